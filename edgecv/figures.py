"""Figures as inline SVG for the HTML report (matplotlib when installed): shared by the report's own
plots and the tasks' (per-class recall, keypoints), below both."""

from __future__ import annotations

import io
import itertools
import re
from typing import Optional

_FIGURES = itertools.count(1)


def pyplot():
    """matplotlib.pyplot on the Agg backend with text kept as text in SVG, or None when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    plt.rcParams["svg.fonttype"] = "none"  # <text> elements, not glyph paths
    plt.rcParams["svg.hashsalt"] = "edgecv"  # the same report gives the same SVG
    return plt


def svg(fig, prefix: Optional[str] = None) -> str:
    """A figure as inline SVG markup, every id (and reference to it) prefixed so that several
    figures can share one page (default prefix: fig1, fig2 ... in this process)."""
    prefix = prefix or f"fig{next(_FIGURES)}"
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    return re.sub(r'(href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
