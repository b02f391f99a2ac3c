"""`book`: execute the chapters under a profile with papermill and render the static HTML book."""

from __future__ import annotations

import argparse

HELP = "execute every chapter of _toc.yml under a parameter profile, then build the HTML book"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded",
                        help="parameters from book/params/<PROFILE>.yaml: smoke, embedded, hmdb51 or ucf101")
    parser.add_argument("--only", metavar="CHAPTER", help="execute only this chapter (e.g. 01_data)")
    parser.add_argument("--no-build", action="store_true", help="execute chapters but do not run jupyter-book")
    parser.add_argument("--force", action="store_true", help="re-execute chapters even when unchanged")


def run(args: argparse.Namespace) -> dict:
    from actiondistill.book import BookRunner

    return BookRunner(args.profile).run(only=args.only, build=not args.no_build, force=args.force)


def format_text(result: dict) -> str:
    lines = [f"profile {result['profile']}"]
    lines += [f"  {name}: {status}" for name, status in result["chapters"].items()]
    if result.get("html"):
        lines.append(f"book: {result['html']}")
    elif result.get("build"):
        lines.append(f"build {result['build']}")
    return "\n".join(lines)
