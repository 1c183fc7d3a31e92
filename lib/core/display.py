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
