"""Render the book's maths as MathML when the HTML is built, so that it shows without a network.

Why: Sphinx's default renderer leaves `\\(...\\)` in the page for MathJax, which the browser fetches from a CDN; a
reader offline (and this project's build machines) then sees raw LaTeX. Browsers render MathML natively, and
`latex2mathml` converts the LaTeX the chapters use at build time. An expression it cannot convert fails the build,
naming it, rather than reaching the page as raw text.
"""

from __future__ import annotations

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError


def _mathml(latex: str, display: str) -> str:
    try:
        return convert(latex.strip(), display=display)
    except Exception as error:  # latex2mathml raises several types; any is a build error naming the maths
        raise ExtensionError(f"maths {latex!r}: latex2mathml cannot convert it ({error})") from error


def visit_inline(self, node: nodes.math) -> None:
    self.body.append(f'<span class="math">{_mathml(node.astext(), "inline")}</span>')
    raise nodes.SkipNode


def visit_block(self, node: nodes.math_block) -> None:
    self.body.append(f'<div class="math">{_mathml(node.astext(), "block")}</div>')
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict:
    app.add_html_math_renderer("mathml", (visit_inline, None), (visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
