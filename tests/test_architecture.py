"""The import contract of docs/architecture.md, checked by import-linter (layers and no cycles), and the rule
that trainlab's modules import each other at module level: a function-local import of a trainlab module only
in the command line, where it buys start-up time. (Optional or heavy third-party packages, such as Ray or
matplotlib, may still be imported where they are used.)"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "trainlab"


def lint(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts on the package under ``src``."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))"
    )
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_package_keeps_its_import_contract() -> None:
    out = lint(ROOT / "src")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        # a low layer reaching up: the searchers must know nothing of networks or trainers
        ("metaheuristics/de.py", "import trainlab.trainers.base", "trainlab.metaheuristics.de -> trainlab.trainers.base"),
        # a cycle hidden in a function body is still a cycle
        ("trainers/lr_finder.py", "def _hidden():\n    from trainlab.trainers import gradient", ".lr_finder -> .gradient"),
    ],
)
def test_the_contract_fails_on_a_deliberately_bad_import(
    tmp_path: Path, module: str, bad_import: str, broken: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "trainlab", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "trainlab" / module, "a") as f:
        f.write(f"\n\n{bad_import}\n")
    out = lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "BROKEN" in out.stdout and broken in out.stdout


def _local_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every import of a trainlab module inside a function body of ``path``."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    names = [inner.module or ""]
                elif isinstance(inner, ast.Import):
                    names = [alias.name for alias in inner.names]
                else:
                    continue
                if any(name == "trainlab" or name.startswith("trainlab.") for name in names):
                    found.append((inner.lineno, lines[inner.lineno - 1].strip()))
    return found


def test_function_local_imports_only_in_the_command_line_each_with_its_reason() -> None:
    elsewhere, unexplained = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, source in _local_imports(path):
            if relative.startswith("cli/") or relative == "__init__.py":
                if "# start-up time" not in source:
                    unexplained.append(f"{relative}:{line}: {source}")
            else:
                elsewhere.append(f"{relative}:{line}: {source}")
    assert not elsewhere, "function-local imports outside trainlab.cli:\n" + "\n".join(elsewhere)
    assert not unexplained, "command-line imports without a '# start-up time' reason:\n" + "\n".join(unexplained)


def test_python_dash_m_runs_the_command() -> None:
    """``python -m trainlab`` is the ``trainlab`` command (same name in its usage line, same exit codes)."""
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "trainlab", "--version"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.startswith("trainlab"), (out.stdout, out.stderr)
    bad = subprocess.run([sys.executable, "-m", "trainlab", "no-such-command"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "trainlab" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_listing_the_commands_imports_neither_torch_nor_the_library() -> None:
    code = (
        "import sys\n"
        "from trainlab.cli import main\n"
        "for args in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('trainlab.trainers', 'trainlab.data')))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
