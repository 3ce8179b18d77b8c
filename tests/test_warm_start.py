"""Warm start (``init_from``): from a run folder, from an experiment store by run id, and the errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainlab.core.budget import Budget
from trainlab.core.config import ConfigError
from trainlab.experiments.spec import RunSpec, execute
from trainlab.experiments.store import ResultStore
from trainlab.models import build_model


def test_warm_start_from_a_run_folder_and_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        first = execute(RunSpec("bcw", "mlp1", "adam", Budget(epochs=2), seed=3))
    except ConfigError as err:  # the data set is absent
        pytest.skip(str(err))
    first.save(tmp_path / "first")
    shape = tuple(first.state_dict["0.running_mean"].shape)
    loaded = build_model("mlp1", shape, 2, init_from=str(tmp_path / "first"))
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, first.state_dict[key]), key
    store = ResultStore(tmp_path / "runs" / "exp" / "store.sqlite")
    run_id = first.config["run_id"]
    spec = {k: v for k, v in first.config.items() if k != "run_id"}
    store.save(run_id, spec, first, experiment="exp", label="adam", seed_index=0)
    from_store = build_model("mlp1", shape, 2, init_from=str(tmp_path / "runs" / "exp" / run_id))
    monkeypatch.chdir(tmp_path)
    from_id = build_model("mlp1", shape, 2, init_from=run_id)
    for key, value in first.state_dict.items():
        assert torch.equal(from_store.state_dict()[key], value) and torch.equal(from_id.state_dict()[key], value)
    second = execute(RunSpec("bcw", "mlp1", "adam", Budget(epochs=1), seed=0,
                             model_options={"init_from": str(tmp_path / "first")}))
    assert second.history[0]["train_loss"] == pytest.approx(first.final["train_loss"], rel=1e-5)


def test_warm_start_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.mlp1\.init_from: got '.*nowhere'; allowed: a run folder"):
        build_model("mlp1", (30,), 2, init_from=str(tmp_path / "nowhere"))
    (tmp_path / "other").mkdir()
    torch.save(build_model("mlp2", (30,), 2).state_dict(), tmp_path / "other" / "model.pt")
    with pytest.raises(ConfigError, match=r"model\.mlp1\.init_from: .*a run of the same architecture \(differs in"):
        build_model("mlp1", (30,), 2, init_from=str(tmp_path / "other"))
    with pytest.raises(ConfigError, match=r"allowed: a run id in exactly one runs/\*/store\.sqlite \(found in none\)"):
        build_model("mlp1", (30,), 2, init_from="0123456789abcdef")
