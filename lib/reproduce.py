"""Run a chapter (or every chapter) with papermill at a scale; keep the notebook and record.

Usage::

    python -m lib.reproduce --list
    python -m lib.reproduce foundations --scale smoke
    python -m lib.reproduce prune_quant --scale full -p seed=1 -p setup=lenet5-mnist
    python -m lib.reproduce omni_sparsity --scale full --gpus 8
    python -m lib.reproduce --all --scale smoke
    python -m lib.reproduce noisy_training --scale full --gpus 2 --max-steps 2   # dry run

Writes ``<out>/<chapter>-<scale>[-<setup>].ipynb`` and the matching ``.json`` record (the
chapter's metrics plus the notebook's wall time). Parameters are checked against the types
of the chapter's ``parameters`` cell before a kernel starts. A failing cell, a cell past its
timeout or a dead kernel ends with one message naming the chapter and the cell, and a
non-zero exit; ``--all`` goes on past a failure, prints a summary table and exits non-zero
if any chapter failed.

``--gpus N`` exports ``BOOK_GPUS=N``: data-parallel chapters (``DATA_PARALLEL = True`` in
their paper module) train on N workers through torch's elastic launcher (NCCL on GPUs, gloo
on CPU); single-device chapters say so and run on one. ``--max-steps N`` exports
``BOOK_MAX_STEPS=N``, which caps every training loop (``lib.core.limits``): the full-scale
path end to end on fixture data in seconds, never mistaken for a result.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import yaml

from lib.core import paths
from lib.core.checkpoint import atomic_write_bytes
from lib.core.config import SCALES
from lib.core.distributed import GPUS_ENV
from lib.core.limits import STEP_LIMIT_ENV
from lib.core.netguard import NETNS_ENV, isolated_command
from lib.core.record import read_record, record_path

CHAPTERS_DIR = paths.REPO_ROOT / "chapters"
NETGUARD_SOURCE = "from lib.core.netguard import block_network\nblock_network()"

#: Seconds a cell may run, per scale (None: no limit). Full-scale training cells run for
#: hours; smoke cells that take minutes are a bug.
CELL_TIMEOUT_S: dict[str, int | None] = {"smoke": 900, "tutorial": 1800, "full": None}


class ChapterFailed(RuntimeError):
    """A chapter raised, timed out, lost its kernel, or ran without writing its record."""


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


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    raise ValueError("notebook has no code cell tagged 'parameters'")


def parameter_defaults(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """``{name: default}`` of the literal assignments of the ``parameters`` cell."""
    out: dict[str, Any] = {}
    for node in ast.parse(_parameters_cell(nb).source).body:
        if isinstance(node, ast.Assign):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = value
    return out


def parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned in the cell tagged ``parameters`` (papermill's contract)."""
    return list(parameter_defaults(nb))


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


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_params(chapter: str, nb: nbformat.NotebookNode, params: dict[str, Any]) -> None:
    """Every parameter exists in the chapter and has the type of its default (an int where
    a float is expected is fine); raises ``ValueError`` saying what is valid."""
    defaults = parameter_defaults(nb)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters are {', '.join(defaults)}")
    for name, value in params.items():
        default = defaults[name]
        if default is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"chapter {chapter!r}: parameter {name}={value!r} is a "
                             f"{_type_name(value)}, but {name} takes a {_type_name(default)} "
                             f"(default {default!r})")
    if "scale" in params and params["scale"] not in SCALES:
        raise ValueError(f"unknown scale {params['scale']!r}; valid scales are "
                         f"{', '.join(SCALES)}")


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


def is_data_parallel(chapter: str) -> bool:
    """Whether the chapter's paper module trains data-parallel (``DATA_PARALLEL``)."""
    try:
        module = importlib.import_module(f"lib.papers.{chapter}")
    except ModuleNotFoundError:
        return False
    return bool(getattr(module, "DATA_PARALLEL", False))


def _last_started_source(output_path: Path) -> str | None:
    """The source of the last cell that started in the executed notebook (a timeout or a
    dead kernel leaves it there; papermill marks even it "completed")."""
    try:
        nb = nbformat.read(output_path, as_version=4)
    except Exception:  # noqa: BLE001 - a half-written notebook tells nothing
        return None
    started = [c for c in nb.cells
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1].source if started else None


def _cell_label(source_nb: Path, cell_source: str | None) -> str:
    """"cell N ('first line')", N counted in the chapter's own notebook (cells the runner
    adds, the injected parameters and the network guard, are not counted)."""
    if cell_source is None:
        return "an unknown cell"
    first = next((line for line in cell_source.splitlines() if line.strip()), "")
    nb = nbformat.read(source_nb, as_version=4)
    index = next((i for i, c in enumerate(nb.cells) if c.source == cell_source), None)
    where = "the injected parameters cell" if index is None else f"cell {index}"
    return f"{where} ({first.strip()[:70]!r})"


@contextmanager
def _environment(**values: str | None):
    """Set (or, with None, leave) environment variables for the kernel; restore after."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is not None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_chapter(chapter: str, scale: str = "tutorial", params: dict[str, Any] | None = None,
                out_dir: str | Path | None = None, *, block_network: bool = False,
                output_path: str | Path | None = None, kernel_name: str | None = None,
                log_output: bool = False, gpus: int | None = None,
                max_steps: int | None = None,
                cell_timeout: int | None | str = "scale") -> dict[str, Any]:
    """Execute ``chapters/<chapter>.ipynb`` at ``scale`` with papermill; return its record.

    Raises ``ValueError`` for an unknown chapter, scale or parameter (or one of the wrong
    type), before any kernel starts, and ``ChapterFailed`` when a cell raises, a cell runs
    past ``cell_timeout`` (default ``CELL_TIMEOUT_S[scale]``), the kernel dies, or the
    chapter writes no fresh metrics record.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are {', '.join(SCALES)}")
    source = notebook_path(chapter)
    nb = nbformat.read(source, as_version=4)
    params = {"scale": scale, **(params or {})}
    if "max_steps" in params and "max_steps" not in parameter_names(nb):
        max_steps = params.pop("max_steps")  # -p max_steps=N: the runner's step limit
    check_params(chapter, nb, params)
    for name, value in (("gpus", gpus), ("max_steps", max_steps)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < (1 if name == "gpus" else 0)):
            raise ValueError(f"{name} must be a {'positive' if name == 'gpus' else 'non-negative'}"
                             f" integer, got {value!r}")
    if cell_timeout == "scale":
        cell_timeout = CELL_TIMEOUT_S[scale]
    setup = params.get("setup")
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    record_file = record_path(chapter, scale, out_dir, setup)
    output_path = (Path(output_path) if output_path
                   else out_dir / record_file.with_suffix(".ipynb").name)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if block_network:  # the guard runs first in the kernel and is hidden in the book
        guard = nbformat.v4.new_code_cell(NETGUARD_SOURCE, metadata={"tags": ["remove-cell"]})
        nb.cells.insert(0, guard)
    staged = output_path.with_suffix(".input.ipynb")
    nbformat.write(nb, staged)
    record_file.unlink(missing_ok=True)
    # Smoke and tutorial models are tiny: intra-op threads only contend (measured 4x slower
    # with 2 threads on a 2-core machine). Export OMP_NUM_THREADS to override.
    threads = os.environ.get("OMP_NUM_THREADS") or ("1" if scale != "full" else None)
    start = time.perf_counter()
    env = {"BOOK_RESULTS_DIR": str(out_dir.resolve()),
           "BOOK_PROGRESS": os.environ.get("BOOK_PROGRESS", "0"), "OMP_NUM_THREADS": threads,
           GPUS_ENV: None if gpus is None else str(gpus),
           STEP_LIMIT_ENV: None if not max_steps else str(max_steps)}
    try:
        with _environment(**env):
            pm.execute_notebook(str(staged), str(output_path), parameters=params,
                                cwd=str(CHAPTERS_DIR), kernel_name=kernel_name,
                                execution_timeout=cell_timeout, progress_bar=False,
                                log_output=log_output)
    except pm.PapermillExecutionError as err:
        raise ChapterFailed(f"chapter {chapter!r} failed at scale {scale!r} in "
                            f"{_cell_label(source, err.source)}: "
                            f"{err.ename}: {err.evalue}") from None
    except CellTimeoutError:
        raise ChapterFailed(f"chapter {chapter!r} at scale {scale!r}: "
                            f"{_cell_label(source, _last_started_source(output_path))} ran "
                            f"past the per-cell timeout of "
                            f"{cell_timeout} s (set another with --cell-timeout)") from None
    except DeadKernelError:
        raise ChapterFailed(f"chapter {chapter!r} at scale {scale!r}: the kernel died in "
                            f"{_cell_label(source, _last_started_source(output_path))} "
                            f"(killed, or out of memory)") from None
    finally:
        staged.unlink(missing_ok=True)
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
    record["params"] = dict(params)
    if gpus is not None:
        record["gpus"] = gpus
    atomic_write_bytes(record_file, (json.dumps(record, indent=2) + "\n").encode())
    return record


def run_all(scale: str, params: dict[str, Any] | None = None,
            out_dir: str | Path | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Every chapter of ``_toc.yml`` at ``scale``, going on past failures; one summary row
    per chapter (``status`` ok / failed, seconds, message). Parameters a chapter does not
    have are not passed to it."""
    rows = []
    for chapter in chapters_in_toc():
        names = parameter_names(nbformat.read(notebook_path(chapter), as_version=4))
        mine = {k: v for k, v in (params or {}).items() if k in names or k == "max_steps"}
        start = time.perf_counter()
        try:
            run_chapter(chapter, scale, mine, out_dir, **kwargs)
            rows.append({"chapter": chapter, "status": "ok", "message": ""})
        except (ChapterFailed, ValueError) as err:
            rows.append({"chapter": chapter, "status": "failed", "message": str(err)})
        rows[-1]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[reproduce] {chapter}: {rows[-1]['status']} ({rows[-1]['seconds']} s)",
              flush=True)
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["chapter"]) for r in rows)
    lines = [f"{'chapter':{width}s}  status  seconds  message"]
    for r in rows:
        lines.append(f"{r['chapter']:{width}s}  {r['status']:6s}  {r['seconds']:7.1f}  "
                     f"{r['message'].splitlines()[0][:120] if r['message'] else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.reproduce",
                                     description="Run a chapter with papermill at a scale.")
    parser.add_argument("chapter", nargs="?", help="chapter name (see --list)")
    parser.add_argument("--all", action="store_true", help="run every chapter of _toc.yml")
    parser.add_argument("--scale", default="tutorial", choices=SCALES)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a chapter parameter (Python literal or string); repeatable")
    parser.add_argument("--gpus", type=int, default=None,
                        help="data-parallel workers (one a GPU; gloo processes on CPU)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every training loop at N steps (a dry run; never judged)")
    parser.add_argument("--cell-timeout", type=int, default=None,
                        help="seconds a cell may run (default: smoke 900, tutorial 1800, "
                             "full none; 0 = none)")
    parser.add_argument("--out", default=None, help="output folder (default: results/)")
    parser.add_argument("--list", action="store_true", help="list the chapters and exit")
    parser.add_argument("--no-network", action="store_true",
                        help="run offline: in a fresh network namespace (loopback only) where "
                             "the platform allows it, and with the in-kernel guard always")
    args = parser.parse_args(argv)
    if args.no_network and not os.environ.get(NETNS_ENV):
        import subprocess

        wrapped = isolated_command([sys.executable, "-m", "lib.reproduce",
                                    *(sys.argv[1:] if argv is None else argv)])
        if wrapped is not None:  # the whole process tree, kernel and its children, offline
            return subprocess.run(wrapped).returncode
    if args.list or not (args.chapter or args.all):
        for name in chapters_in_toc():
            nb = nbformat.read(notebook_path(name), as_version=4)
            kind = "data-parallel" if is_data_parallel(name) else "single-device"
            print(f"{name:20s} {kind:14s} parameters: {', '.join(parameter_names(nb))}")
        return 0
    timeout: int | None | str = "scale"
    if args.cell_timeout is not None:
        timeout = args.cell_timeout or None
    try:
        params = dict(parse_param(p) for p in args.param)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kwargs = dict(block_network=args.no_network, log_output=True, gpus=args.gpus,
                  max_steps=args.max_steps, cell_timeout=timeout)
    if args.all:
        rows = run_all(args.scale, params, args.out, **kwargs)
        print(summary_table(rows))
        return 1 if any(r["status"] != "ok" for r in rows) else 0
    if args.gpus is not None and not is_data_parallel(args.chapter):
        print(f"note: chapter {args.chapter!r} runs on one device; --gpus {args.gpus} is "
              f"passed on but it trains nothing data-parallel", file=sys.stderr)
    try:
        record = run_chapter(args.chapter, args.scale, params, args.out, **kwargs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = record_path(args.chapter, args.scale, args.out, params.get("setup"))
    print(f"{args.chapter} at scale {args.scale}: {record['notebook_wall_time_s']} s; "
          f"record {out}")
    print(json.dumps(record["metrics"], indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
