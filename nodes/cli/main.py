"""``python -m atelier``: Atelier's main job from a shell, on embedded defaults.

    python -m atelier curate --out atelier_demo                   # the main job: a curated storyboard
    python -m atelier plan storyboard_generation --tier high      # stages, workflows, estimates
    python -m atelier plan shot_generation --prompt "a lighthouse at dusk"   # … and the enhanced prompt
    python -m atelier enhance "a red fox" --family flux_dev        # the writer/critic loop, with its trace
    python -m atelier compare --family sdxl                        # the four tiers side by side
    python -m atelier recommend print
    python -m atelier presets                                     # built-in and custom presets
    python -m atelier serve --storyboards atelier_demo             # the Atelier panel at /atelier/ui/

Custom presets, data and outputs live in ``ATELIER_HOME`` (default ``~/.atelier``); the commands are the
table in ``commands.py``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..core.base.errors import AtelierError
from ..host import Atelier, Settings
from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier", description="Atelier: quality tiers and curated pipelines.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        one = sub.add_parser(command.name, help=command.help, description=command.help)
        # --json before or after the command: SUPPRESS keeps the main parser's value when it is not given here
        one.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of tables")
        command.arguments(one)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        atelier = Atelier(Settings.standalone())
        result = command.run(args, atelier)
    except AtelierError as exc:
        print(f"atelier: {exc.message}", file=sys.stderr)
        return 2
    status = command.exit_code(result) if command.exit_code is not None else 0
    if command.show is None:
        return status
    try:
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            command.show(result)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return status
