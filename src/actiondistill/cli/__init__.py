"""Command line: `python -m actiondistill <command>`.

Each module in this package is one subcommand and defines `HELP`, `add_arguments(parser)` and
`run(args) -> dict`; optionally `format_text(result) -> str`. Commands are discovered, so adding one
is adding a file. Heavy imports (torch, av) belong inside `run`, keeping `--help` fast.
Every command gets `--json [PATH]`: the result dict as JSON on stdout (no PATH) or in a file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from types import ModuleType

from actiondistill.io import atomic_write_json


def _command_modules() -> dict[str, ModuleType]:
    modules = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        modules[info.name.replace("_", "-")] = importlib.import_module(f"{__name__}.{info.name}")
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actiondistill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _command_modules().items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                         help="print the result as JSON (or write it to PATH)")
        cmd.set_defaults(_module=module)
    return parser


def default_format(result: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in result.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own progress messages at INFO; libraries (open_clip, papermill) only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("actiondistill").setLevel(logging.INFO)
    module = args._module
    try:
        result = module.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if args.json == "-":
            print(json.dumps({"error": str(err)}))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json == "-":
        print(json.dumps(result, indent=2, default=str))
    else:
        if args.json:
            atomic_write_json(args.json, result)
        print(getattr(module, "format_text", default_format)(result))
    return 0
