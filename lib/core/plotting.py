"""Plot conventions shared by every chapter: one color per method, findings as titles.

Importing this module also applies the book's display style in a notebook
(``lib.core.display.install_book_style``): tables without pandas' positional index, numbers
to a few significant digits, no offset notation on plot axes."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .display import install_book_style

install_book_style()

#: The same method gets the same color in every chapter.
METHOD_COLORS = {
    "dense": "#4d4d4d",
    "baseline": "#1f77b4",
    "ours": "#d62728",
    "paper": "#2ca02c",
    "random": "#7f7f7f",
    "resumed": "#ff7f0e",
    "uninterrupted": "#1f77b4",
}
_FALLBACK = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def method_color(method: str) -> str:
    """Color for ``method``: from ``METHOD_COLORS`` or a stable pick from matplotlib's cycle."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _FALLBACK[sum(map(ord, method)) % len(_FALLBACK)]


def register_colors(colors: dict[str, str]) -> None:
    """Add a paper's methods to the shared palette (existing names keep their color)."""
    for name, color in colors.items():
        METHOD_COLORS.setdefault(name, color)


def finding_axes(ax, *, title: str, xlabel: str, ylabel: str, legend: bool = True):
    """Label ``ax``: the title states the finding, the axes carry units."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()
    return ax
