"""The book's own Sphinx extension: small repairs of what Jupyter Book 1.x renders.

* Jupyter Book 1.x fires ``env-before-read-docs`` twice, so sphinx-thebe and
  sphinx-togglebutton add their inline scripts twice; the second ``const THEBE_JS_URL``
  is a JavaScript error on every page. Scripts with the same source or body are kept once.
* Sphinx loads MathJax only on pages where it recorded equations while reading; executed
  notebooks lost that record in incremental builds (their math showed as raw TeX).
* pydata-sphinx-theme logs an error when the reader has never chosen a colour mode
  ("Got invalid theme mode"): the book says light unless the reader chooses.
"""

from __future__ import annotations

from typing import Any


def _dedupe_scripts(app, pagename: str, templatename: str, context: dict[str, Any],
                    doctree) -> None:
    if not context.get("default_mode"):  # pydata's layout reads it; book-theme leaves it ""
        context["default_mode"] = "light"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the same script comes back with filename None the first time and "" the second
        key = (getattr(script, "filename", str(script)) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: later listeners (MathJax) append to this very list


def _register_bibliography_style() -> None:
    """``bookalpha``: pybtex's alpha style labelled by citation key. Each chapter ends with
    its own bibliography, so alpha's a/b suffixes (assigned within one list) cannot keep
    two papers apart across chapters: ``yang2019ecc`` and ``yang2019energy`` are both
    "YZL19". Keys are unique in references.bib, so the labels are too."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.alpha import Style as Alpha
    from pybtex.style.labels import BaseLabelStyle

    class KeyLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            for entry in sorted_entries:
                yield entry.key

    class BookAlpha(Alpha):
        default_label_style = KeyLabels

    register_plugin("pybtex.style.formatting", "bookalpha", BookAlpha, force=True)


def setup(app) -> dict[str, Any]:
    _register_bibliography_style()
    # MathJax on every page: Sphinx adds it only to pages where it recorded equations while
    # reading, and an incremental build loses that record for executed notebooks
    app.set_html_assets_policy("always")
    # early: a later listener may return a template name, which ends the event
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
