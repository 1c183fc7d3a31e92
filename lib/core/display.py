"""How a chapter shows tables: numbers as a reader expects, long configs folded away.

* ``config_table(cfg)``: a chapter's configuration (tens of knobs) as a table folded into a
  ``<details>`` toggle, so it does not push the chapter's content below the fold.
* ``show_table(frame, percent=..., integer=...)``: a data frame with percentages as
  ``16.5 %`` (not ``0.164508``), counts as ``2,000`` (not ``2000.0``) and other floats to
  a few significant digits; wide tables scroll inside their own box.
"""

from __future__ import annotations

import dataclasses
import html
import math
import numbers
from collections.abc import Iterable
from typing import Any


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    return str(value)


class _HTML:
    """An object Jupyter renders as HTML (``_repr_html_``) without importing IPython."""

    def __init__(self, markup: str):
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return f"<HTML table, {len(self.markup)} characters>"


def config_table(config: Any, title: str = "Configuration") -> _HTML:
    """The knobs of a config dataclass (or a dict) as a folded two-column table."""
    items = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    rows = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td>"
                   f"<td>{html.escape(_format_value(v))}</td></tr>" for k, v in items.items())
    name = type(config).__name__ if dataclasses.is_dataclass(config) else "config"
    return _HTML(f'<details class="book-config"><summary>{html.escape(title)}: '
                 f"{len(items)} knobs of <code>{html.escape(name)}</code> (click to show)"
                 f'</summary><div class="book-table-scroll"><table class="dataframe">'
                 f"<thead><tr><th>knob</th><th>value</th></tr></thead><tbody>{rows}</tbody>"
                 f"</table></div></details>")


def show_table(frame, *, percent: Iterable[str] = (), integer: Iterable[str] = (),
               digits: int = 3, hide_index: bool = False):
    """A pandas ``Styler`` of ``frame`` formatted for reading.

    ``percent`` columns (fractions) show as ``97.3 %``; ``integer`` columns as ``2,000``;
    other float columns to ``digits`` significant digits. Columns may also be named by a
    trailing ``*`` pattern (``"wer_*"``).
    """
    import fnmatch

    columns = [str(c) for c in frame.columns]

    def pick(patterns: Iterable[str]) -> list:
        chosen = []
        for pattern in patterns:
            hits = [c for c, s in zip(frame.columns, columns, strict=True)
                    if fnmatch.fnmatchcase(s, pattern)]
            if not hits:
                raise ValueError(f"no column matches {pattern!r}; columns are {columns}")
            chosen += [h for h in hits if h not in chosen]
        return chosen

    pct, ints = pick(percent), pick(integer)
    formats: dict[Any, Any] = {}
    for col in frame.columns:
        if col in pct:
            formats[col] = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f} %"
        elif col in ints:
            formats[col] = lambda v: "n/a" if v is None or v != v else f"{int(round(v)):,}"
        elif frame[col].dtype.kind == "f":
            formats[col] = lambda v, d=digits: "n/a" if v != v else _sig(v, d)
    styler = frame.style.format(formats)
    if hide_index:
        styler = styler.hide(axis="index")
    return styler.set_table_attributes('class="dataframe book-table"')


def _sig(value: float, digits: int) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


# --- The book's default table style ------------------------------------------------------
#
# A chapter that shows ``pd.DataFrame(rows)`` or ``frame.style.format(...)`` would print
# pandas' positional index (0, 1, 2 ...) as a first column, floats as ``0.164508`` and a
# float index as ``0.300000``. ``install_book_style`` (called when ``lib.core.plotting`` is
# imported, which every chapter does) registers IPython formatters so that every table in a
# chapter reads like ``show_table``'s without each cell asking for it.

#: frames longer than this keep pandas' own (truncating) HTML
MAX_STYLED_ROWS = 200


def _default_index(index) -> bool:
    import pandas as pd

    return (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
            and index.name is None)


def book_styler(styler):
    """``styler`` as the book shows it: a default 0..n-1 index hidden, a float index to four
    significant digits, the book's table class (wide tables scroll inside their box)."""
    import pandas as pd

    frame = styler.data
    if _default_index(frame.index):
        styler = styler.hide(axis="index")
    elif not isinstance(frame.index, pd.MultiIndex) and frame.index.dtype.kind == "f":
        styler = styler.format_index(lambda v: _sig(v, 4), axis=0)
    if "class=" not in (styler.table_attributes or ""):
        styler = styler.set_table_attributes('class="dataframe book-table"')
    return styler


def book_frame_html(frame) -> str:
    """HTML of a plain data frame as the book shows it: ``book_styler`` plus float columns to
    four significant digits and whole floats as integers (``2,000``, not ``2000.0``)."""
    if len(frame) > MAX_STYLED_ROWS or not frame.columns.is_unique:
        return frame._repr_html_()
    formats = {c: (lambda v: "n/a" if v != v else _sig(v, 4))
               for c in frame.columns if frame[c].dtype.kind == "f"}
    return book_styler(frame.style.format(formats)).to_html()


def install_book_style() -> bool:
    """Register the book's table style with the running IPython kernel, and turn off
    matplotlib's axis offsets (``+2.999e1`` under an axis). Returns whether a kernel was
    found; outside IPython (scripts, tests) nothing changes but matplotlib's setting."""
    import sys

    import matplotlib

    matplotlib.rcParams["axes.formatter.useoffset"] = False
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return False
    import pandas as pd
    from pandas.io.formats.style import Styler

    html_formatter = shell.display_formatter.formatters["text/html"]
    html_formatter.for_type(pd.DataFrame, book_frame_html)
    html_formatter.for_type(Styler, lambda s: book_styler(s).to_html())
    return True
