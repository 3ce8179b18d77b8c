"""Every ``trainlab`` command written in README.md and docs/ runs as written.

Fast check (default suite): each command parses against the real command tree (the subcommand exists,
every option is known, required options are given, values pass their types and choices); paths that an
earlier command creates are allowed not to exist yet. Slow check: the fast commands of README.md's tour
are run for real, in order, in an empty folder (a fresh clone's view), and must exit 0 without a
traceback."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from trainlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```([a-z]*)\n(.*?)```", re.S)


def doc_commands(page: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every ``trainlab`` command in the fenced shell blocks of ``page``."""
    text = page.read_text()
    out = []
    for match in FENCE.finditer(text):
        if match.group(1) not in ("", "bash", "sh", "console", "shell"):
            continue
        start = text[: match.start(2)].count("\n") + 1
        block = re.sub(r"\\\n\s*", " ", match.group(2))
        for offset, line in enumerate(block.splitlines()):
            line = line.strip().removeprefix("$ ").strip()
            line = re.sub(r"\s+&$", "", line.split("  #")[0].strip())  # a job sent to the background
            if line.startswith("trainlab "):
                out.append((start + offset, shlex.split(line, comments=True)[1:]))
    return out


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _resolve(argv: list[str]) -> tuple[click.Command, list[str], str]:
    command: click.Command = main
    name = "trainlab"
    while isinstance(command, click.Group) and argv and not argv[0].startswith("-"):
        sub = command.get_command(click.Context(command), argv[0])
        if sub is None:
            raise click.UsageError(f"no command {argv[0]!r} under {name}")
        command, name, argv = sub, f"{name} {argv[0]}", argv[1:]
    return command, argv, name


def parse_problems(page: Path) -> list[str]:
    """Why documented commands of ``page`` would not parse (empty when they all do)."""
    problems = []
    for line, argv in doc_commands(page):
        if page.name == "cli.md" and "--help" in argv:
            continue
        shipped = [a for a in argv if a.startswith("experiments/") and not (ROOT / a).exists()]
        if shipped:
            problems.append(f"{page.name}:{line}: trainlab {' '.join(argv)}: {shipped[0]} is not in the repository")
        try:
            command, args, name = _resolve(argv)
            command.make_context(name, list(args))
        except click.BadParameter as err:
            if "does not exist" not in str(err):
                problems.append(f"{page.name}:{line}: trainlab {' '.join(argv)}: {err.format_message()}")
        except click.ClickException as err:
            problems.append(f"{page.name}:{line}: trainlab {' '.join(argv)}: {err.format_message()}")
    return problems


def test_documented_commands_parse() -> None:
    """In a fresh interpreter: parsing caches click state (help options) that tools/gen_cli_docs.py reads."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_doc_commands as t; "
            "print(json.dumps([p for page in t.pages() for p in t.parse_problems(page)]))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    assert not problems, "\n".join(problems)


FAST_TOUR = ("train --task bcw", "lr-find --task bcw", "dynamic-loss gamma", "train --task spiral",
             "curvature runs/dyn-spiral")


@pytest.mark.slow
def test_readme_tour_runs_in_an_empty_folder(tmp_path: Path) -> None:
    """The README's tour commands on bcw and the spiral (offline data), in order, as a user types them."""
    env = {**os.environ, "TRAINLAB_THREADS": "1"}
    tour = [argv for _, argv in doc_commands(ROOT / "README.md")
            if " ".join(argv).startswith(FAST_TOUR) and "cuda" not in argv]  # the GPU check needs a GPU
    assert len(tour) >= 5
    for argv in tour:
        done = subprocess.run([sys.executable, "-c", "from trainlab.cli import main; main()", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stdout[-2000:], done.stderr[-2000:])


@pytest.mark.slow
def test_bring_your_own_guide_runs_as_written(tmp_path: Path) -> None:
    """docs/bring-your-own.md's Python blocks, in order, in one interpreter, in an empty folder."""
    text = (ROOT / "docs" / "bring-your-own.md").read_text()
    script = tmp_path / "guide.py"
    script.write_text("\n\n".join(block for lang, block in FENCE.findall(text) if lang == "python"))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TRAINLAB_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "my-compare" / "report" / "report.html").is_file()
