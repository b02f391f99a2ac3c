"""The package's layers, enforced: nothing lower imports anything higher (not even by a module-name string).

foundation (io, paths, config, parallel, stats, openmp) -> data -> models -> losses -> engine (engine/, train, evaluate,
frame_cache) -> everything else (the chapters' experiment code, the profiler, real time, the CLI) -> the chapter
modules (chapters/chNN_*, imported by the book runner alone, each reading earlier chapters only from records). The
higher modules are free to import downwards; the point is that the engine and what it stands on never depend on a
chapter, so a chapter can change without touching them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "actiondistill"
LAYERS: list[set[str]] = [
    {"__init__", "io", "paths", "config", "parallel", "stats", "openmp"},
    {"data"},
    {"models"},
    {"losses"},
    {"engine", "train", "evaluate", "frame_cache"},
]
_NAME = re.compile(r"^actiondistill\.(\w+)")


def layer(top: str) -> int:
    """The layer index of a top-level module or package name; everything unlisted sits above the engine."""
    return next((i for i, names in enumerate(LAYERS) if top in names), len(LAYERS))


def named_modules(path: Path, strings: bool = True) -> list[tuple[str, int]]:
    """(dotted name, line) of every module `path` imports, and with `strings` every string constant (importlib
    targets), so that the checks below read one walk of the syntax tree."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"{node.module}.{a.name}" for a in node.names] if node.module.count(".") < 2
                     and node.module.startswith("actiondistill") else [node.module])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        found.extend((name, node.lineno) for name in names)
    return found


def imported(path: Path) -> set[tuple[str, int]]:
    """(top-level name, line) of every package module `path` imports or names in a string (importlib targets)."""
    return {(match.group(1), line) for name, line in named_modules(path) if (match := _NAME.match(name))}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in modules() if layer(p.relative_to(PACKAGE).parts[0].removesuffix(".py"))
                                  < len(LAYERS)], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_lower_layer_imports_a_higher_one(path):
    own = layer(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
    upward = sorted(f"actiondistill.{top} (line {line})" for top, line in imported(path)
                    if top != "__version__" and layer(top) > own)
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {own}) imports higher layers: {upward}"


def test_the_check_sees_imports_of_every_kind(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from actiondistill.spatial import x\nimport actiondistill.deit.objectives\n"
                      "from actiondistill import profiler\nNAMES = ('actiondistill.pkd',)\nfrom . import local\n")
    assert {top for top, _ in imported(source)} == {"spatial", "deit", "profiler", "pkd"}
    assert layer("data") < layer("models") < layer("losses") < layer("engine") < layer("spatial")


CHAPTER = re.compile(r"^actiondistill\.chapters\.(ch\d\d_\w+)")


def chapter_modules_imported(path: Path) -> set[tuple[str, int]]:
    """(chapter module, line) of every `actiondistill.chapters.chNN_*` module `path` imports."""
    return {(match.group(1), line) for name, line in named_modules(path, strings=False)
            if (match := CHAPTER.match(name))}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_chapters_sit_on_top_and_read_each_other_only_through_records(path):
    """Only the book runner may import a chapter module (chNN_*); a chapter imports no other chapter: what it needs
    from an earlier one it reads from that chapter's record."""
    relative = path.relative_to(PACKAGE)
    imported_chapters = chapter_modules_imported(path)
    if relative.parts[0] == "chapters":
        own = relative.stem
        others = sorted(f"{name} (line {line})" for name, line in imported_chapters if name != own)
        assert not others, f"{relative} imports other chapters: {others}"
    else:
        assert relative.stem == "book" or not imported_chapters, f"{relative} imports chapters: {imported_chapters}"


def test_every_notebook_has_its_chapter_module():
    notebooks = sorted(p.stem for p in (PACKAGE.parents[1] / "book").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks and all((PACKAGE / "chapters" / f"ch{name}.py").is_file() for name in notebooks)
