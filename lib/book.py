"""Build the book: execute every chapter of ``_toc.yml`` at a scale, then render HTML.

Usage::

    python -m lib.book                    # tutorial scale -> _build/html
    python -m lib.book --scale smoke      # what CI builds
    python -m lib.book --only foundations # a subset (other chapters are left out)

Each chapter is executed afresh with papermill (so the book never shows results older
than the library), its record lands in ``results/``, and the executed notebooks are
rendered by Jupyter Book from a staging folder ``_build/src`` with warnings as errors.
The repository's own ``_config.yml`` also works with a plain ``jupyter-book build .``:
it sets ``execute_notebooks: force`` for the same reason.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from lib.core import paths
from lib.core.config import SCALES
from lib.core.netguard import NETNS_ENV, isolated_command
from lib.reproduce import (
    ChapterFailed,
    chapters_in_toc,
    is_data_parallel,
    parameter_defaults,
    run_chapter,
)

REPOSITORY_ENV = "BOOK_REPOSITORY_URL"

SKIP = {"_build", ".git", ".venv", "results", "chapters", ".pytest_cache", ".ruff_cache",
        "_config.yml", "_toc.yml"}


def _prune_toc(node, keep: set[str]):
    """The toc with chapter notebooks not in ``keep`` removed."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            pruned = _prune_toc(value, keep)
            if pruned is not None:
                out[key] = pruned
        file = node.get("file")
        if isinstance(file, str) and file.startswith("chapters/"):
            stem = Path(file).stem
            if (paths.REPO_ROOT / "chapters" / f"{stem}.ipynb").exists() and stem not in keep:
                return None
        if "chapters" in node and not out.get("chapters"):
            return None  # a part left with no chapters is not a valid toc entry
        return out
    if isinstance(node, list):
        items = [p for p in (_prune_toc(v, keep) for v in node) if p is not None]
        return items
    return node


def reproduce_box(chapter: str, nb: nbformat.NotebookNode,
                  record: dict[str, Any] | None = None) -> str:
    """The "Reproduce this chapter" box: the exact command at each scale, its knobs, and
    how this page was made."""
    defaults = parameter_defaults(nb)
    knobs = ", ".join(f"`{k}` ({v!r})" for k, v in defaults.items() if k != "scale")
    gpus = (" --gpus N" if is_data_parallel(chapter) else "")
    setup = " -p setup=<setup>" if "setup" in defaults else ""
    lines = [
        ":::{admonition} Reproduce this chapter",
        ":class: tip",
        "",
        "```bash",
        f"python -m lib.reproduce {chapter} --scale smoke      # seconds: what CI runs",
        f"python -m lib.reproduce {chapter} --scale tutorial   # what this page shows",
        f"python -m lib.reproduce {chapter} --scale full{gpus}{setup}   # the paper's setup",
        "```",
        "",
        f"Parameters (`-p name=value`): {knobs}. "
        + ("Full scale trains data-parallel on `--gpus N` workers. " if gpus else
           "Full scale runs on one device. ")
        + "Or open the notebook in JupyterLab (`make lab`) and set `scale` in its first cell.",
    ]
    if record is not None:
        lines += ["", f"This page was executed at scale `{record['scale']}` in "
                      f"{record.get('notebook_wall_time_s', record['wall_time_s']):.0f} s "
                      f"(commit `{str(record.get('git_commit', ''))[:10]}`)."]
    lines.append(":::")
    return "\n".join(lines)


_CITE = re.compile(r"\{cite:[pt]\}`")


def prepare_for_book(nb: nbformat.NotebookNode, chapter: str,
                     record: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    """What the rendered chapter shows beyond the executed notebook: papermill's injected
    parameters hidden, and at the end the reproduce box and the chapter's own references."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "(reproduce-" + chapter.replace("_", "-") + ")=\n## Reproduce this chapter\n\n"
        + reproduce_box(chapter, nb, record)))
    if any(_CITE.search(c.source) for c in nb.cells if c.cell_type == "markdown"):
        nb.cells.append(nbformat.v4.new_markdown_cell(
            "## References\n\n```{bibliography}\n:filter: docname in docnames\n```"))
    return nb


def stage(src: Path, executed: dict[str, Path], only: set[str] | None,
          records: dict[str, dict[str, Any]] | None = None) -> None:
    """Mirror the repository into ``src`` with executed notebooks in ``chapters/``."""
    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    root = paths.REPO_ROOT
    for entry in root.iterdir():
        if entry.name not in SKIP and not entry.name.startswith("."):
            (src / entry.name).symlink_to(entry)
    for entry in (root / "chapters").iterdir():
        if entry.suffix != ".ipynb" and entry.name != ".ipynb_checkpoints":
            (src / "chapters" / entry.name).symlink_to(entry)
    for name, path in executed.items():
        nb = prepare_for_book(nbformat.read(path, as_version=4), name,
                              (records or {}).get(name))
        nbformat.write(nb, src / "chapters" / f"{name}.ipynb")
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"  # executed above
    url = os.environ.get(REPOSITORY_ENV, "").strip()
    if url:  # the repository is a setting: its buttons show only when it is given
        config.setdefault("repository", {})["url"] = url
        config.setdefault("html", {}).update(use_repository_button=True,
                                             use_issues_button=True)
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if only is not None:
        toc = _prune_toc(toc, only)
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


def build(scale: str = "tutorial", only: list[str] | None = None, out: Path | None = None,
          block_network: bool = False) -> dict[str, float]:
    """Execute and render; return seconds per step. Raises on any failure."""
    names = chapters_in_toc()
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
        names = [n for n in names if n in only]
    build_dir = out or paths.REPO_ROOT / "_build"
    exec_dir = build_dir / "executed" / scale
    timings: dict[str, float] = {}
    executed: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    os.environ.setdefault("BOOK_PROGRESS", "0")  # progress bars do not belong in the book
    for name in names:
        start = time.perf_counter()
        print(f"[book] executing {name} at scale {scale} ...", flush=True)
        records[name] = run_chapter(name, scale, out_dir=paths.results_dir(),
                                    output_path=exec_dir / f"{name}.ipynb",
                                    block_network=block_network)
        timings[name] = time.perf_counter() - start
        executed[name] = exec_dir / f"{name}.ipynb"
        print(f"[book]   {name}: {timings[name]:.1f} s", flush=True)
    src = build_dir / "src"
    stage(src, executed, set(names) if only else None, records)
    start = time.perf_counter()
    # warnings are errors, except for --only builds: their other pages' links dangle
    strict = ["--warningiserror", "--nitpick"] if not only else []
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output",
           str(build_dir.parent if build_dir.name == "_build" else build_dir),
           "--builder", "html", *strict, "--keep-going"]
    proc = subprocess.run(cmd, text=True, capture_output=True)
    timings["render"] = time.perf_counter() - start
    sys.stdout.write(proc.stdout[-6000:])
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-6000:])
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode})")
    html = build_dir / "html"
    for name in ["index", *(f"chapters/{n}" for n in names)]:
        if not (html / f"{name}.html").exists():
            raise RuntimeError(f"rendered book lacks {name}.html")
    print(f"[book]   render: {timings['render']:.1f} s -> {html / 'index.html'}")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="tutorial", choices=SCALES)
    parser.add_argument("--only", default=None, help="comma-separated chapters to build")
    parser.add_argument("--no-network", action="store_true",
                        help="build offline: in a fresh network namespace (loopback only) "
                             "where the platform allows it, and with the in-kernel guard")
    args = parser.parse_args(argv)
    if args.no_network and not os.environ.get(NETNS_ENV):
        wrapped = isolated_command([sys.executable, "-m", "lib.book",
                                    *(sys.argv[1:] if argv is None else argv)])
        if wrapped is not None:
            return subprocess.run(wrapped).returncode
    start = time.perf_counter()
    try:
        timings = build(args.scale, args.only.split(",") if args.only else None,
                        block_network=args.no_network)
    except (ValueError, ChapterFailed, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    print("[book] timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
          + f"; total {total:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
