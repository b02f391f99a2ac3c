"""The book runner on a tiny throwaway book: execution, reuse, parameter checks, failures, HTML build."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from actiondistill.book import BookRunner, ChapterFailed, chapter_parameters, chapters, load_profile, toc_entries
from actiondistill.paths import project_root

ROOT = project_root()

CONFIG = {"title": "t", "only_build_toc_files": True, "execute": {"execute_notebooks": "off"}}


def make_book(root: Path, body: str = "print(x * 2)", params: dict | None = None) -> Path:
    (root / "book" / "params").mkdir(parents=True)
    (root / "_config.yml").write_text(yaml.safe_dump(CONFIG))
    (root / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "book/intro", "chapters": [{"file": "book/ch1"}]}))
    (root / "book" / "intro.md").write_text("# Intro\n\nhello\n")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Chapter one"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    nbformat.write(notebook, root / "book" / "ch1.ipynb")
    (root / "book" / "params" / "p.yaml").write_text(yaml.safe_dump(params or {"defaults": {"x": 21, "unused": 0}}))
    return root


def outputs(runner: BookRunner) -> str:
    notebook = nbformat.read(runner.executed_dir / "book" / "ch1.ipynb", as_version=4)
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


def test_toc_lists_root_and_chapters(tmp_path):
    root = make_book(tmp_path)
    assert toc_entries(root) == ["book/intro", "book/ch1"]
    assert [c.name for c in chapters(root)] == ["ch1"]


def test_executes_with_profile_parameters_then_reuses(tmp_path):
    root = make_book(tmp_path)
    runner = BookRunner("p", root=root)
    first = runner.run(build=False)
    assert first["chapters"]["ch1"].startswith("executed")
    assert "42" in outputs(runner)  # the profile's x=21 reached the chapter; 'unused' was dropped
    assert BookRunner("p", root=root).run(build=False)["chapters"]["ch1"] == "reused"
    (root / "book" / "params" / "p.yaml").write_text(yaml.safe_dump({"defaults": {"x": 5}}))
    assert BookRunner("p", root=root).run(build=False)["chapters"]["ch1"].startswith("executed")
    assert "10" in outputs(runner)


def test_chapter_key_not_declared_is_an_error(tmp_path):
    root = make_book(tmp_path, params={"chapters": {"ch1": {"y": 3}}})
    with pytest.raises(ValueError, match=r"chapters\.ch1 sets \['y'\]"):
        BookRunner("p", root=root).run(build=False)


def test_unknown_profile_names_the_known_ones(tmp_path):
    root = make_book(tmp_path)
    with pytest.raises(FileNotFoundError, match="profiles here: p"):
        BookRunner("nope", root=root)


def test_failing_chapter_is_named_with_traceback_and_leaves_nothing_stale(tmp_path):
    root = make_book(tmp_path, body="raise ValueError('broken on purpose')")
    stale_html = tmp_path / "_build" / "html"
    stale_html.mkdir(parents=True)
    runner = BookRunner("p", root=root)
    with pytest.raises(ChapterFailed, match="chapter ch1") as err:
        runner.run()
    assert "broken on purpose" in str(err.value)
    assert not (runner.executed_dir / "book" / "ch1.ipynb").exists()
    assert not stale_html.exists()


def test_only_unknown_chapter(tmp_path):
    root = make_book(tmp_path)
    with pytest.raises(ValueError, match="no such chapter"):
        BookRunner("p", root=root).run(only="ch9", build=False)


def test_builds_html(tmp_path):
    root = make_book(tmp_path)
    report = BookRunner("p", root=root).run()
    index = Path(report["html"])
    assert index.is_file()
    page = (index.parent / "book" / "ch1.html").read_text()
    assert "Chapter one" in page and "42" in page


def test_staged_chapters_fold_the_parameters_papermill_injects(tmp_path):
    runner = BookRunner("p", root=make_book(tmp_path))
    runner.run(build=False)
    staged = nbformat.read(runner.stage() / "book" / "ch1.ipynb", as_version=4)
    injected = [c for c in staged.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "hide-input" in injected[0].metadata["tags"]


def test_a_chapter_run_by_the_book_keys_its_records_by_the_profile_and_one_run_by_hand_by_its_world(tmp_path):
    from actiondistill.chapter_records import record_name

    root = make_book(tmp_path, params={"defaults": {"x": 1}})
    notebook = nbformat.read(root / "book" / "ch1.ipynb", as_version=4)
    notebook.cells[1].source = "x = 1\nrecord_key = None"
    nbformat.write(notebook, root / "book" / "ch1.ipynb")
    chapter = chapters(root)[0]
    assert chapter_parameters(chapter, load_profile(root, "p")) == {"x": 1, "record_key": "p"}
    assert record_name("embedded", "embedded", "synthactions", "standard", 2400, 64, 32, 3) == "embedded"
    by_hand = record_name("embedded", None, "synthactions", "standard", 2400, 64, 32, 3)
    assert by_hand == "embedded-standard_n2400_s64_f32_seed3" != record_name("embedded", None, "synthactions",
                                                                            "standard", 2400, 64, 32, 0)
    assert record_name("hmdb51", None, "hmdb51") == "hmdb51-hmdb51"


@pytest.mark.parametrize("notebook", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_maths_is_broken_across_lines_into_a_list_item(notebook):
    # a wrapped line of inline maths that starts with "+ \alpha" or "- \lambda" is read as a new list item,
    # which tears the expression apart in the rendered page (chapter 7's loss did)
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            bad = [line for line in cell.source.splitlines() if line.lstrip().startswith(("+ \\", "- \\"))]
            assert not bad, f"{notebook.name}: a line of maths reads as a list item: {bad}"


FAKE_TABLE = {"machine": "a test CPU", "frames": 16, "seeds": [0, 1, 2], "goal": {"sentence": "No student reaches it."},
              "table": [{"model": "teacher (ActionCLIP Transf)", "top1_mean": 54.5, "top1_std": 1.1, "speedup": 1.0,
                         "drop": 0.0},
                        {"model": "swap + spatial", "top1_mean": 52.25, "top1_std": 2.0, "speedup": 2.15,
                         "drop": 2.25}]}


def test_the_staged_introduction_opens_with_chapter_7s_headline_and_the_rerun_commands(tmp_path, monkeypatch):
    from actiondistill.front_matter import MARKER

    root = make_book(tmp_path / "book")
    (root / "book" / "intro.md").write_text(f"# Intro\n\n{MARKER}\n\nmore\n")
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path / "data"))
    runner = BookRunner("p", root=root)
    runner.run(build=False)
    intro = (runner.stage() / "book" / "intro.md").read_text()
    assert MARKER not in intro and "once chapter 7 has run on the `p` profile" in intro
    assert "python -m actiondistill book --profile p --only ch1" in intro
    (tmp_path / "data" / "results").mkdir(parents=True)
    (tmp_path / "data" / "results" / "combined-p.json").write_text(json.dumps(FAKE_TABLE))
    intro = (runner.stage() / "book" / "intro.md").read_text()
    assert "| teacher (ActionCLIP Transf) | 54.5 ± 1.1 | 1.00x | 0 |" in intro
    assert "| swap + spatial | 52.2 ± 2.0 | 2.15x | +2.2 |" in intro
    assert "No student reaches it." in intro and "66.5% at 1.73x" in intro and "a test CPU" in intro


@pytest.mark.parametrize("notebook", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_chapter_reads_as_prose_with_its_code_folded(notebook):
    """The rendered book shows prose, tables and figures: every code cell is folded (`hide-input`) or, for the
    imports, removed (`remove-input`); only a cell the book does not run (`skip-execution`, code to copy) shows."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    shown = [c.source.splitlines()[0] for c in cells
             if not {"hide-input", "remove-input", "skip-execution"} & set(c.metadata.get("tags", []))]
    assert shown == []
    assert "remove-input" in cells[1].metadata["tags"]  # the imports


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "book" / "params").glob("*.yaml")))
def test_every_profile_sets_only_parameters_its_chapters_declare(profile):
    """A misspelt or stale key in any profile (real ones included, which CI cannot execute) fails here."""
    loaded = load_profile(ROOT, profile)
    for chapter in chapters(ROOT):
        chapter_parameters(chapter, loaded)
    assert set(loaded["chapters"]) <= {c.name for c in chapters(ROOT)}


def test_maths_is_rendered_to_mathml_with_the_books_configuration(tmp_path):
    """The book's own Sphinx settings turn `$...$` and `$$...$$` into MathML: no raw delimiters left for a CDN."""
    root = make_book(tmp_path, body="print('ok')")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {name: str(ROOT / path) for name, path in sphinx["local_extensions"].items()}
    (root / "_config.yml").write_text(yaml.safe_dump({**CONFIG, "parse": config["parse"], "sphinx": sphinx}))
    (root / "book" / "intro.md").write_text(
        "# Intro\n\nInline $(1 - \\alpha)\\,\\mathcal{L}_\\text{frame} + \\lambda \\sum_o\n"
        "\\mathrm{KL}(t_o \\,\\|\\, h_o)$ across a line.\n\n$$\\mathcal{L} = \\frac{1}{2},$$\n")
    report = BookRunner("p", root=root).run()
    page = (Path(report["html"]).parent / "book" / "intro.html").read_text()
    assert page.count("<math") == 2 and 'display="block"' in page
    assert "\\(" not in page and "$$" not in page and "\\mathcal" not in page


def test_a_chapter_module_declares_the_parameters_its_notebook_cell_leaves_out(tmp_path, monkeypatch):
    import importlib.machinery
    import sys
    import types
    from dataclasses import dataclass

    from actiondistill.chapters.kit import ChapterParams

    @dataclass
    class Params(ChapterParams):
        lr: float = 1e-3

    module = types.ModuleType("actiondistill.chapters.chch1")
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    module.Params = Params
    monkeypatch.setitem(sys.modules, module.__name__, module)
    root = make_book(tmp_path, params={"defaults": {"videos": 9, "unused": 1}, "chapters": {"ch1": {"lr": 0.5}}})
    chapter = chapters(root)[0]
    assert chapter.name == "ch1"
    assert chapter_parameters(chapter, load_profile(root, "p")) == {"videos": 9, "lr": 0.5, "record_key": "p"}
    typo = make_book(tmp_path / "typo", params={"chapters": {"ch1": {"lrr": 0.5}}})
    with pytest.raises(ValueError, match=r"sets \['lrr'\].*Params"):
        chapter_parameters(chapters(typo)[0], load_profile(typo, "p"))
