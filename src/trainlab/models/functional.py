"""A model as a function of one flat parameter vector: the layout shared by the population engine, the
second-order trainers and the curvature diagnostics.

θ concatenates a model's trainable parameters in ``named_parameters`` order; :class:`ParamLayout` records their
names, shapes and offsets, reads θ from a model, writes θ into one, and maps θ (or a batch of them, (..., D))
to the name → tensor dict that ``torch.func.functional_call`` takes, as views (no copies).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and offsets of a model's trainable parameters inside a genome of length ``dim``."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]
    dim: int

    @classmethod
    def of(cls, model: nn.Module) -> ParamLayout:
        names, shapes, offsets, dim = [], [], [], 0
        for name, p in model.named_parameters():
            if p.requires_grad:
                names.append(name)
                shapes.append(p.shape)
                offsets.append(dim)
                dim += p.numel()
        return cls(tuple(names), tuple(shapes), tuple(offsets), dim)

    def flatten(self, model: nn.Module) -> Tensor:
        """The genome (D,) of ``model``'s current parameters."""
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, genomes: Tensor) -> dict[str, Tensor]:
        """Views of ``genomes`` (..., D) as parameters shaped (..., *shape)."""
        lead = genomes.shape[:-1]
        return {
            n: genomes[..., o : o + math.prod(s)].reshape(*lead, *s)
            for n, s, o in zip(self.names, self.shapes, self.offsets)
        }

    @torch.no_grad()
    def load(self, model: nn.Module, genome: Tensor) -> None:
        """Copy ``genome`` (D,) into ``model``'s parameters."""
        params = dict(model.named_parameters())
        for n, v in self.unflatten(genome).items():
            params[n].copy_(v)

    def flatten_tensors(self, tensors: dict[str, Tensor]) -> Tensor:
        """θ (D,) from a name → tensor dict (the inverse of :meth:`unflatten` for one vector)."""
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)
