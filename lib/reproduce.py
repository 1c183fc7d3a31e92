"""Run a chapter with papermill at a scale and keep the executed notebook and its record.

Usage::

    python -m lib.reproduce --list
    python -m lib.reproduce foundations --scale smoke
    python -m lib.reproduce prune_quant --scale full -p seed=1 -p budget=200 --out results/
    python -m lib.reproduce omni_sparsity --scale full --gpus 8

Writes ``<out>/<chapter>-<scale>.ipynb`` and ``<out>/<chapter>-<scale>.json`` (the
chapter's metrics record plus the notebook's wall time) and exits non-zero, printing the
failing cell's error, when the chapter fails or records nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from lib.core import paths
from lib.core.checkpoint import atomic_write_bytes
from lib.core.config import SCALES
from lib.core.record import read_record, record_path

CHAPTERS_DIR = paths.REPO_ROOT / "chapters"
NETGUARD_SOURCE = "from lib.core.netguard import block_network\nblock_network()"


class ChapterFailed(RuntimeError):
    """A chapter raised, or ran without writing its metrics record."""


def book_config() -> dict[str, Any]:
    return yaml.safe_load((paths.REPO_ROOT / "_config.yml").read_text())


def chapters_in_toc() -> list[str]:
    """Names of the executable chapters listed in ``_toc.yml`` (notebook stems), in order."""
    toc = yaml.safe_load((paths.REPO_ROOT / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith("chapters/"):
                stem = Path(file).stem
                if (CHAPTERS_DIR / f"{stem}.ipynb").exists():
                    names.append(stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return names


def notebook_path(chapter: str) -> Path:
    path = CHAPTERS_DIR / f"{chapter}.ipynb"
    if not path.exists():
        raise ValueError(f"unknown chapter {chapter!r}; chapters: {', '.join(chapters_in_toc())}")
    return path


def parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned in the cell tagged ``parameters`` (papermill's contract)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return [t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
    raise ValueError("notebook has no code cell tagged 'parameters'")


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value`` with ``value`` a Python literal when it parses as one, else a string."""
    if "=" not in text:
        raise ValueError(f"parameter {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Descriptions of error outputs (and tracebacks printed to stderr) in a notebook."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                found.append(f"cell {i}: traceback on stderr")
    return found


def run_chapter(chapter: str, scale: str = "tutorial", params: dict[str, Any] | None = None,
                out_dir: str | Path | None = None, *, block_network: bool = False,
                output_path: str | Path | None = None, kernel_name: str | None = None,
                log_output: bool = False) -> dict[str, Any]:
    """Execute ``chapters/<chapter>.ipynb`` at ``scale`` with papermill; return its record.

    Raises ``ValueError`` for an unknown chapter, scale or parameter, and ``ChapterFailed``
    when a cell raises or the chapter writes no fresh metrics record.
    """
    import papermill as pm

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are {', '.join(SCALES)}")
    source = notebook_path(chapter)
    nb = nbformat.read(source, as_version=4)
    params = {"scale": scale, **(params or {})}
    valid = parameter_names(nb)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters are {', '.join(valid)}")
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    output_path = Path(output_path) if output_path else out_dir / f"{chapter}-{scale}.ipynb"
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if block_network:  # the guard runs first in the kernel and is hidden in the book
        guard = nbformat.v4.new_code_cell(NETGUARD_SOURCE, metadata={"tags": ["remove-cell"]})
        nb.cells.insert(0, guard)
    staged = output_path.with_suffix(".input.ipynb")
    nbformat.write(nb, staged)
    record_file = record_path(chapter, scale, out_dir)
    record_file.unlink(missing_ok=True)
    timeout = book_config().get("execute", {}).get("timeout", 1800)
    env_before = {k: os.environ.get(k) for k in ("BOOK_RESULTS_DIR", "BOOK_PROGRESS",
                                                  "OMP_NUM_THREADS")}
    os.environ["BOOK_RESULTS_DIR"] = str(out_dir.resolve())
    os.environ.setdefault("BOOK_PROGRESS", "0")
    if scale != "full":
        # Smoke and tutorial models are tiny: intra-op threads only contend (measured 4x
        # slower with 2 threads on a 2-core machine). Export OMP_NUM_THREADS to override.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(staged), str(output_path), parameters=params,
                            cwd=str(CHAPTERS_DIR), kernel_name=kernel_name,
                            execution_timeout=timeout, progress_bar=False,
                            log_output=log_output)
    except pm.PapermillExecutionError as err:
        raise ChapterFailed(f"chapter {chapter!r} failed at scale {scale!r} in cell "
                            f"{err.exec_count}: {err.ename}: {err.evalue}\n"
                            + "\n".join(err.traceback)) from None
    finally:
        staged.unlink(missing_ok=True)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - start
    executed = nbformat.read(output_path, as_version=4)
    errors = error_outputs(executed)
    if errors:
        raise ChapterFailed(f"chapter {chapter!r}: error output in " + "; ".join(errors))
    if not record_file.exists():
        raise ChapterFailed(f"chapter {chapter!r} ran but wrote no metrics record "
                            f"{record_file.name}: it must end with lib.core.write_record(...)")
    record = read_record(record_file)
    record["notebook_wall_time_s"] = round(seconds, 2)
    record["params"] = {k: v for k, v in params.items()}
    atomic_write_bytes(record_file, (json.dumps(record, indent=2) + "\n").encode())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.reproduce",
                                     description="Run a chapter with papermill at a scale.")
    parser.add_argument("chapter", nargs="?", help="chapter name (see --list)")
    parser.add_argument("--scale", default="tutorial", choices=SCALES)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a chapter parameter (Python literal or string); repeatable")
    parser.add_argument("--gpus", type=int, default=None,
                        help="worker processes for data-parallel training (chapters with a "
                             "'gpus' parameter)")
    parser.add_argument("--out", default=None, help="output folder (default: results/)")
    parser.add_argument("--list", action="store_true", help="list the chapters and exit")
    parser.add_argument("--no-network", action="store_true",
                        help="refuse network connections inside the chapter's kernel")
    args = parser.parse_args(argv)
    if args.list or not args.chapter:
        for name in chapters_in_toc():
            nb = nbformat.read(notebook_path(name), as_version=4)
            print(f"{name:20s} parameters: {', '.join(parameter_names(nb))}")
        return 0
    try:
        params = dict(parse_param(p) for p in args.param)
        if args.gpus is not None:
            params["gpus"] = args.gpus
        record = run_chapter(args.chapter, args.scale, params, args.out,
                             block_network=args.no_network, log_output=True)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = record_path(args.chapter, args.scale, args.out)
    print(f"{args.chapter} at scale {args.scale}: {record['notebook_wall_time_s']} s; "
          f"record {out}")
    print(json.dumps(record["metrics"], indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
