"""Data pipeline benchmark: ratios measured within one run (the machine is shared and noisy).

1. uint8 → float [0, 1] + bilinear 28→32 resize of 10,000 MNIST-sized images: one vectorised
   ``to_float_images`` call vs a per-image loop (the thesis's torchvision-style per-sample transform).
2. Augmentation of a 512-image batch: one ``affine_grid``/``grid_sample`` call vs a per-image loop.
3. ``load_task("mnist")``: share of the time spent verifying sha256 checksums (needs TRAINLAB_DATA).

Usage: ``.venv/bin/python bench/bench_data.py [--repeats 5]``
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.data import DATASETS, MissingDataError, data_root, load_task
from trainlab.data.images import RandomAffine, affine, to_float_images
from trainlab.data.root import verify_file
from timing import best_of



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    images = np.random.default_rng(0).integers(0, 256, size=(10000, 28, 28), dtype=np.uint8)

    def per_image() -> torch.Tensor:
        out = []
        for img in images:
            x = torch.from_numpy(img).float().div(255).view(1, 1, 28, 28)
            out.append(F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))
        return torch.cat(out)

    vec = best_of(lambda: to_float_images(images, cpu, "bilinear"), args.repeats)
    loop = best_of(per_image, max(1, args.repeats // 2))
    torch.testing.assert_close(per_image(), to_float_images(images, cpu, "bilinear"))
    print(f"convert+resize 10k images: per-image loop / vectorised = {loop / vec:.1f}x")

    batch = to_float_images(images[:512], cpu, "bilinear")
    aug = RandomAffine(2.0, 10.0)
    gen = torch.Generator().manual_seed(0)

    def aug_loop() -> torch.Tensor:
        u = torch.rand(len(batch), 3, generator=gen) * 2 - 1
        return torch.cat([affine(batch[i : i + 1], u[i : i + 1, 0] * 10, u[i : i + 1, 1:] * 2) for i in range(len(batch))])

    one = best_of(lambda: aug(batch, gen), args.repeats)
    many = best_of(aug_loop, args.repeats)
    print(f"augment 512-image batch: per-image loop / one call = {many / one:.1f}x")

    try:
        total = best_of(lambda: load_task("mnist"), max(1, args.repeats // 2))
    except MissingDataError as err:
        print(f"load_task('mnist') skipped: {err}")
        return
    folder = data_root() / "mnist"
    checks = best_of(lambda: [verify_file(folder / f.name, f) for f in DATASETS["mnist"].files], args.repeats)
    print(f"load_task('mnist'): sha256 verification = {100 * checks / total:.0f}% of the load time")


if __name__ == "__main__":
    main()
