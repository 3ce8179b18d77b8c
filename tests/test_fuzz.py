"""Fuzz tests: mutated shipped experiment files and bad ``train`` command lines end either accepted (with the
same meaning when only the form changed) or refused in one line; never a traceback, never a hang.

The default suite runs a few hundred cases; ``-m slow`` runs at least 3,000 files and 250 command lines.
"""
from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from click.testing import CliRunner

from fuzz_support import bad_train_lines, mutate
from trainlab.cli import main
from trainlab.core.config import ConfigError
from trainlab.experiments.config import Experiment, load_experiment

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "experiments").glob("*.toml"))
LIMIT_S = 30


class Hang(Exception):
    """A case ran past ``LIMIT_S`` seconds."""


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _meaning(experiment: Experiment) -> set[tuple[str, str, int]]:
    """What an experiment means: its runs (identity, trainer label, seed index), in any order."""
    return {(r.run_id, r.label, r.seed_index) for r in experiment.runs}


def fuzz_files(tmp_path: Path, cases_per_file: int) -> Counter[str]:
    """Mutate every shipped file ``cases_per_file`` times; returns the counts and fails on any bad case."""
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for file in FILES:
        text = file.read_text()
        original = _meaning(load_experiment(file))
        for seed in range(cases_per_file):
            mutation = mutate(text, seed)
            path = tmp_path / file.name
            path.write_bytes(mutation.text)
            case = f"{file.name} #{seed} {mutation.kind} {mutation.where}"
            counts["cases"] += 1
            try:
                with deadline(LIMIT_S):
                    experiment = load_experiment(path)
            except ConfigError as err:
                counts["refused"] += 1
                if "\n" in str(err):
                    failures.append(f"{case}: refused in several lines: {err}")
                if mutation.oracle == "same":
                    failures.append(f"{case}: a change of form was refused: {err}")
                continue
            except Hang:
                counts["hangs"] += 1
                failures.append(f"{case}: ran past {LIMIT_S} s")
                continue
            except Exception as err:  # noqa: BLE001 - what the test counts
                counts["tracebacks"] += 1
                failures.append(f"{case}: {type(err).__name__}: {err}")
                continue
            counts["accepted"] += 1
            if mutation.oracle == "refuse":
                failures.append(f"{case}: a typo was silently accepted")
            if mutation.oracle == "same" and _meaning(experiment) != original:
                failures.append(f"{case}: a change of form changed the runs")
    print(f"experiment-file fuzz: {dict(counts)}")
    assert not failures, f"{len(failures)} bad cases of {counts['cases']}:\n" + "\n".join(failures[:40])
    return counts


def fuzz_train(tmp_path: Path, count: int) -> Counter[str]:
    """``count`` bad ``train`` command lines, in process: each must exit non-zero with one error line."""
    runner = CliRunner()
    counts: Counter[str] = Counter()
    failures = []
    for i, extra in enumerate(bad_train_lines(count)):
        args = ["train", "--task", "bcw", "--model", "mlp1", "--epochs", "1", "--out", str(tmp_path / f"out{i}"), *extra]
        counts["cases"] += 1
        with deadline(LIMIT_S):
            result = runner.invoke(main, args)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            counts["tracebacks"] += 1
            failures.append(f"{extra}: {type(result.exception).__name__}: {result.exception}")
        elif result.exit_code == 0:
            counts["accepted"] += 1
            failures.append(f"{extra}: accepted (exit 0)")
        elif len(errors) != 1 or "Traceback" in result.output:
            failures.append(f"{extra}: {len(errors)} error lines: {result.output!r}")
        else:
            counts["refused"] += 1
    print(f"train command-line fuzz: {dict(counts)}")
    assert not failures, f"{len(failures)} bad lines of {count}:\n" + "\n".join(failures[:40])
    return counts


def test_mutated_experiment_files_are_accepted_or_refused_in_one_line(tmp_path: Path) -> None:
    counts = fuzz_files(tmp_path, 30)
    assert counts["cases"] == 30 * len(FILES) and counts["refused"] > 0 and counts["accepted"] > 0


def test_bad_train_command_lines_are_refused_in_one_line(tmp_path: Path, data_root: Path) -> None:
    counts = fuzz_train(tmp_path, 40)
    assert counts["refused"] == 40


@pytest.mark.slow
def test_thousands_of_mutated_experiment_files(tmp_path: Path) -> None:
    counts = fuzz_files(tmp_path, 400)
    assert counts["cases"] >= 3000


@pytest.mark.slow
def test_hundreds_of_bad_train_command_lines(tmp_path: Path, data_root: Path) -> None:
    counts = fuzz_train(tmp_path, 260)
    assert counts["refused"] == 260
