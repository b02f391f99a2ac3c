"""The book runner: execute every chapter with papermill under a profile, then render with Jupyter Book.

Source notebooks in `book/` keep their small `parameters` defaults (the smoke profile, which nbval runs).
Executed copies go to `_build/executed/<profile>/` with a fingerprint of everything that determines
them (notebook, parameters, package source); a staging tree `_build/stage/<profile>/` mirrors the
book's sources with the executed notebooks in place, and Jupyter Book renders that into `_build/html`.
A chapter whose fingerprint is unchanged since its last successful run is reused, and the log says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actiondistill.io import atomic_write_json
from actiondistill.paths import project_root

log = logging.getLogger(__name__)

PROFILES = ("smoke", "embedded", "hmdb51", "ucf101")


@dataclass(frozen=True)
class Chapter:
    """A notebook listed in `_toc.yml`; `name` is its stem, e.g. `01_data`."""

    source: Path

    @property
    def name(self) -> str:
        return self.source.stem


def fold_injected_parameters(notebook: dict[str, Any]) -> dict[str, Any]:
    """`notebook` with papermill's injected-parameters cell folded (`hide-input`), like the chapter's own parameters
    cell: the rendered page reads as prose, tables and figures, and what the profile set is one click away."""
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    return notebook


class _DeclaredParameters(logging.Filter):
    """Silences papermill's "Passed unknown parameter" for parameters the chapter's module declares: its notebook's
    parameters cell lists only `profile`, and its `Params` the rest (`declared_parameters`)."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = "Passed unknown parameter: "
        return not (message.startswith(prefix) and message.removeprefix(prefix) in self.names)


class ChapterFailed(RuntimeError):
    """A chapter raised while executing: names the chapter and carries its traceback."""


def toc_entries(root: Path) -> list[str]:
    """All `file:` entries of `_toc.yml` (the root page first), in reading order."""
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise FileNotFoundError(f"{toc_path}: the book's table of contents is missing")
    toc = yaml.safe_load(toc_path.read_text()) or {}
    entries = [toc["root"]] if "root" in toc else []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("chapters", []))
            walk(item.get("sections", []))
            for part in item.get("parts", []):
                walk(part.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return entries


def chapters(root: Path) -> list[Chapter]:
    """The executable chapters: toc entries that are notebooks."""
    found = []
    for entry in toc_entries(root):
        notebook = root / f"{entry}.ipynb"
        if notebook.is_file():
            found.append(Chapter(notebook))
        elif not (root / f"{entry}.md").is_file():
            raise FileNotFoundError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists")
    return found


def load_profile(root: Path, profile: str) -> dict[str, Any]:
    """Read `book/params/<profile>.yaml`: `defaults` (offered to every chapter) and `chapters.<name>` overrides."""
    path = root / "book" / "params" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "book" / "params").glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such profile {profile!r} (profiles here: {', '.join(known)})")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"defaults", "chapters"}
    if unknown:
        raise ValueError(f"{path}: unexpected top-level keys {sorted(unknown)} (expected 'defaults' and 'chapters')")
    return {"defaults": data.get("defaults") or {}, "chapters": data.get("chapters") or {}, "path": path,
            "name": profile}


def declared_parameters(chapter: Chapter) -> set[str]:
    """The parameters a chapter takes: its notebook's parameters cell, and the fields of its module's `Params`
    (`actiondistill.chapters.ch<NN>_<name>`, when it has one), which papermill injects by name."""
    import importlib
    import importlib.util

    import papermill

    declared = set(papermill.inspect_notebook(str(chapter.source)))
    module = f"actiondistill.chapters.ch{chapter.name}"
    if importlib.util.find_spec(module) is not None:
        declared |= set(importlib.import_module(module).Params.fields())
    return declared


def chapter_parameters(chapter: Chapter, profile: dict[str, Any]) -> dict[str, Any]:
    """Parameters for one chapter: profile defaults it declares, then its own overrides.

    Defaults a chapter does not declare (`declared_parameters`) are dropped silently (they are meant for other
    chapters); a chapter-specific key it does not declare is a typo and raises. A chapter that declares
    `record_key` gets the profile's name: its records are the book's (`chapter_records.record_name`).
    """
    declared = declared_parameters(chapter)
    params = {k: v for k, v in profile["defaults"].items() if k in declared}
    own = profile["chapters"].get(chapter.name) or {}
    undeclared = sorted(set(own) - declared)
    if undeclared:
        raise ValueError(
            f"{profile['path']}: chapters.{chapter.name} sets {undeclared}, which {chapter.source.name}'s "
            f"parameters cell and its chapter module's Params do not declare (declared: {sorted(declared)})"
        )
    params.update(own)
    if "record_key" in declared:
        params["record_key"] = profile["name"]
    return params


def package_digest() -> str:
    """Hash of the package source: a chapter's output depends on the code it calls."""
    digest = hashlib.sha256()
    src = Path(__file__).resolve().parent
    for path in sorted(src.rglob("*")):
        if path.suffix in {".py", ".json", ".yaml"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(src)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(chapter: Chapter, params: dict[str, Any], package: str) -> str:
    digest = hashlib.sha256(chapter.source.read_bytes())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(package.encode())
    return digest.hexdigest()


class BookRunner:
    """Executes chapters of one profile and builds the HTML book from the executed copies."""

    def __init__(self, profile: str, root: Path | None = None, build_dir: Path | None = None):
        self.root = (root or project_root()).resolve()
        self.profile_name = profile
        self.profile = load_profile(self.root, profile)
        self.build_dir = (build_dir or self.root / "_build").resolve()
        self.executed_dir = self.build_dir / "executed" / profile
        self.stage_dir = self.build_dir / "stage" / profile

    def executed_path(self, chapter: Chapter) -> Path:
        return self.executed_dir / chapter.source.relative_to(self.root)

    def record_path(self, chapter: Chapter) -> Path:
        return self.executed_path(chapter).with_suffix(".run.json")

    def is_fresh(self, chapter: Chapter, digest: str) -> bool:
        record = self.record_path(chapter)
        if not (record.is_file() and self.executed_path(chapter).is_file()):
            return False
        return json.loads(record.read_text()).get("fingerprint") == digest

    def execute(self, chapter: Chapter, params: dict[str, Any], digest: str) -> float:
        """Run one chapter with papermill; on failure remove its stale copy and raise ChapterFailed."""
        import papermill
        from papermill.exceptions import PapermillExecutionError

        output = self.executed_path(chapter)
        output.parent.mkdir(parents=True, exist_ok=True)
        self.record_path(chapter).unlink(missing_ok=True)
        partial = output.with_name(f".{output.name}.partial.ipynb")
        start = time.perf_counter()
        declared = _DeclaredParameters(declared_parameters(chapter))
        papermill_log = logging.getLogger("papermill")
        papermill_log.addFilter(declared)
        try:
            papermill.execute_notebook(
                str(chapter.source), str(partial), parameters=params, cwd=str(chapter.source.parent),
                kernel_name="python3", progress_bar=False, log_output=False,
            )
        except PapermillExecutionError as err:
            output.unlink(missing_ok=True)
            raise ChapterFailed(
                f"chapter {chapter.name} ({chapter.source}) failed in cell {err.exec_count}: {err.ename}: "
                f"{err.evalue}\n" + "\n".join(err.traceback)
            ) from None
        finally:
            papermill_log.removeFilter(declared)
        partial.replace(output)
        seconds = time.perf_counter() - start
        atomic_write_json(self.record_path(chapter), {
            "chapter": chapter.name, "profile": self.profile_name, "fingerprint": digest,
            "parameters": params, "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        return seconds

    def run(self, only: str | None = None, build: bool = True, force: bool = False) -> dict[str, Any]:
        """Execute (or reuse) chapters in toc order, then build if every chapter is fresh."""
        from tqdm.auto import tqdm

        all_chapters = chapters(self.root)
        names = [c.name for c in all_chapters]
        if only is not None and only not in names:
            raise ValueError(f"--only {only!r}: no such chapter in _toc.yml (chapters: {', '.join(names)})")
        package = package_digest()
        report: dict[str, Any] = {"profile": self.profile_name, "chapters": {}}
        stale = []
        for chapter in tqdm(all_chapters, desc=f"book [{self.profile_name}]", unit="chapter"):
            params = chapter_parameters(chapter, self.profile)
            digest = fingerprint(chapter, params, package)
            fresh = self.is_fresh(chapter, digest)
            if only is not None and chapter.name != only:
                report["chapters"][chapter.name] = "fresh" if fresh else "stale (not run: --only)"
                if not fresh:
                    stale.append(chapter.name)
                continue
            if fresh and not force:
                log.info("chapter %s: reused, unchanged since its last successful run", chapter.name)
                report["chapters"][chapter.name] = "reused"
                continue
            log.info("chapter %s: executing with %s", chapter.name, params)
            try:
                seconds = self.execute(chapter, params, digest)
            except ChapterFailed:
                shutil.rmtree(self.build_dir / "html", ignore_errors=True)  # no longer matches the code
                raise
            report["chapters"][chapter.name] = f"executed in {seconds:.1f}s"
        report["html"] = None
        if build and stale:
            report["build"] = f"skipped: chapters {stale} are stale; run without --only to render the whole book"
        elif build:
            report["html"] = str(self.build())
        return report

    def stage(self) -> Path:
        """Mirror the book's sources into the staging tree, with executed notebooks in place."""
        if self.stage_dir.exists():
            shutil.rmtree(self.stage_dir)
        self.stage_dir.mkdir(parents=True)
        for name in ("_config.yml", "_toc.yml"):
            shutil.copy2(self.root / name, self.stage_dir / name)
        for path in (self.root / "book").rglob("*"):
            rel = path.relative_to(self.root)
            if path.is_dir() or path.suffix == ".ipynb" or "params" in rel.parts or ".ipynb_checkpoints" in rel.parts:
                continue
            (self.stage_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, self.stage_dir / rel)
        for chapter in chapters(self.root):
            target = self.stage_dir / chapter.source.relative_to(self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            notebook = json.loads(self.executed_path(chapter).read_text())
            target.write_text(json.dumps(fold_injected_parameters(notebook), indent=1, ensure_ascii=False))
        self.stage_front_matter()
        return self.stage_dir

    def stage_front_matter(self) -> None:
        """Write the headline results of chapter 7's record and the re-run box into the staged introduction."""
        from actiondistill.front_matter import MARKER, front_matter

        intro = self.stage_dir / "book" / "intro.md"
        if intro.is_file() and MARKER in (text := intro.read_text()):
            names = [chapter.name for chapter in chapters(self.root)]
            intro.write_text(text.replace(MARKER, front_matter(self.profile_name, names)))

    def build(self) -> Path:
        """Render the staged book to `<build_dir>/html`; a failed build leaves no half-written HTML."""
        stage = self.stage()
        html = self.build_dir / "html"
        jb = Path(sys.executable).with_name("jupyter-book")
        command = [str(jb) if jb.exists() else "jupyter-book", "build", str(stage), "--path-output", str(stage)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            raise RuntimeError(f"jupyter-book build of {stage} failed:\n{output}")
        if html.exists():
            shutil.rmtree(html)
        shutil.move(str(stage / "_build" / "html"), str(html))
        return html / "index.html"
