"""Command line: `python -m actiondistill <command>`.

Each module in this package is one subcommand and defines `HELP`, `add_arguments(parser)` and
`run(args) -> dict`; optionally `format_text(result) -> str`. Commands are discovered, so adding one
is adding a file. Heavy imports (torch, av) belong inside `run`, keeping `--help` fast.
A command that streams frames defines `streams(args) -> bool`: idle OpenMP threads then spin briefly
(`openmp.limit_spinning`), which must happen before torch is imported.
Every command gets `--json [PATH]`: the result dict as JSON on stdout (no PATH) or in a file, and `--debug`.
An error is one line on stderr naming what was wrong (exit 2), never a traceback unless `--debug` is given;
Ctrl-C exits 130 and a closed output pipe ends quietly. A command that stops early with a result to report
(a stream interrupted or failing mid-way) raises `StoppedEarly`: its result is still printed and written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from actiondistill.io import atomic_write_json
from actiondistill.openmp import limit_spinning

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
#: errors of ordinary use, reported in one line; anything else is a bug and says how to get its traceback
USER_ERRORS = (ValueError, OSError, RuntimeError, TypeError, LookupError)


class StoppedEarly(Exception):
    """A command stopped before its end but has a result to report (printed and written as usual)."""

    def __init__(self, result: dict, message: str, exit_code: int):
        super().__init__(message)
        self.result, self.exit_code = result, exit_code


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
        cmd.add_argument("--debug", action="store_true", help="show the traceback of an error")
        cmd.set_defaults(_module=module)
    return parser


def default_format(result: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in result.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own progress messages at INFO; libraries (open_clip, papermill) only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("actiondistill").setLevel(logging.INFO)
    try:
        code = _run(args)
        sys.stdout.flush()  # a reader that has gone shows here, not at interpreter exit where it cannot be caught
        return code
    except BrokenPipeError:
        # the reader (e.g. `head`) has gone: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    module = args._module
    code, message = 0, None
    try:
        if args.json not in (None, "-") and Path(args.json).is_dir():
            raise ValueError(f"--json {args.json}: is a folder; expected a file path for the JSON result")
        if getattr(module, "streams", lambda _: False)(args):
            limit_spinning()  # before the command imports torch (`openmp`)
        result = module.run(args)
    except StoppedEarly as stop:
        result, code, message = stop.result, stop.exit_code, str(stop)
    except KeyboardInterrupt:
        if args.debug:
            raise
        _report_error(args, "interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # not an error of the command: `main` ends quietly
    except Exception as err:  # one line for the user; the traceback only on request
        if args.debug:
            raise
        text = str(err) if isinstance(err, USER_ERRORS) else (
            f"{type(err).__name__}: {err} (an unexpected error: run with --debug for the traceback)")
        _report_error(args, text)
        return EXIT_ERROR
    if args.json == "-":
        print(json.dumps(result | ({"error": message} if message else {}), indent=2, default=str))
    else:
        if args.json:
            atomic_write_json(args.json, result | ({"error": message} if message else {}))
        print(getattr(module, "format_text", default_format)(result))
    if message:
        print(f"error: {message}" if code == EXIT_ERROR else message, file=sys.stderr)
    return code


def _report_error(args: argparse.Namespace, text: str) -> None:
    if args.json == "-":
        print(json.dumps({"error": text}))
    else:
        print(f"error: {text}", file=sys.stderr)
