"""Write docs/cli.md from the ``--help`` text of every ``trainlab`` command (run after changing the CLI)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from trainlab.cli import main


def render() -> str:
    lines = [
        "# Command-line reference",
        "",
        "Generated from `trainlab ... --help` by `python tools/gen_cli_docs.py`; "
        "`tests/test_docs.py` checks that it is current. `python -m trainlab` is the same command, for "
        "environments without the `trainlab` script on the path.",
        "",
    ]

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        settings = {"terminal_width": 100, "max_content_width": 100, **command.context_settings}
        ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
        lines.extend([f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "", "```text", command.get_help(ctx), "```", ""])
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*path, name], ctx)

    walk(main, ["trainlab"], None)
    return "\n".join(lines)


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    out.write_text(render())
    sys.stdout.write(f"wrote {out}\n")
