"""The static import graph of ``lib/``: which library modules a piece of code can run.

An artifact's cache key holds the *code version* of its builder: the source of every ``lib``
module the builder's module imports, directly or transitively. The graph is read from the
files with ``ast`` (no import is executed), so nothing can be forgotten by hand and a
module that is imported lazily inside a function counts too.

What counts as an import of module ``m``:

* ``import lib.a.b`` -> ``lib.a.b``;
* ``from lib.a import b`` -> ``lib.a.b`` when ``b`` is a submodule, else ``lib.a`` (the
  package's ``__init__``, where the name ``b`` is defined);
* relative forms resolve against ``m``'s package.

A parent package's ``__init__`` that only runs because a submodule is imported is *not* a
dependency: ``lib/papers/x/task.py`` does not depend on ``lib/papers/x/__init__.py`` (which
re-exports the method) unless it imports a name from it. That is what lets a paper keep its
dense model's key independent of the method trained on top (put the dense model in a module
that does not import the method).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import types
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from . import paths

LIB_PACKAGE = "lib"


def lib_root() -> Path:
    """The folder of the ``lib`` package being run (a worktree's own when on PYTHONPATH)."""
    return paths.REPO_ROOT / LIB_PACKAGE


def module_file(name: str) -> Path | None:
    """The source file of library module ``name`` (``lib.a.b``), or None if not in ``lib``."""
    parts = name.split(".")
    if parts[0] != LIB_PACKAGE:
        return None
    base = lib_root().joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str | None:
    """``lib.a.b`` for a file under ``lib_root()``."""
    try:
        rel = path.resolve().relative_to(lib_root().resolve())
    except ValueError:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([LIB_PACKAGE, *parts])


@lru_cache(maxsize=4096)
def _imports_of_source(source: bytes, name: str | None, is_package: bool) -> frozenset[str]:
    tree = ast.parse(source)
    package = (name if is_package else name.rpartition(".")[0]) if name else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == LIB_PACKAGE:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not package:
                    continue
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != LIB_PACKAGE:
                continue
            names_from_init = False
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if alias.name != "*" and module_file(sub) is not None:
                    found.add(sub)
                else:
                    names_from_init = True
            if names_from_init:
                found.add(base)
    return frozenset(m for m in found if module_file(m) is not None)


def direct_imports(path: Path, name: str | None = None) -> frozenset[str]:
    """Library modules imported anywhere in the file ``path`` (module ``name`` if in lib)."""
    name = name if name is not None else _module_name(path)
    return _imports_of_source(path.read_bytes(), name, path.name == "__init__.py")


def closure(roots: Iterable[str | Path]) -> list[str]:
    """Every library module reachable from ``roots`` (module names or file paths), sorted.

    A root given as a library module name is included itself; a root file outside ``lib``
    (a test, a script) contributes its imports only.
    """
    seen: set[str] = set()
    stack: list[str] = []
    for root in roots:
        if isinstance(root, Path):
            name = _module_name(root)
            if name is not None:
                stack.append(name)
            else:
                stack.extend(direct_imports(root))
        else:
            if module_file(root) is None:
                raise ValueError(f"{root!r} is not a module of {lib_root()}")
            stack.append(root)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(direct_imports(module_file(name), name) - seen)
    return sorted(seen)


CodeRoot = types.ModuleType | Callable | type | str | Path


def code_version(*objects: CodeRoot) -> str:
    """A short hash of the code behind ``objects`` and every library module it imports.

    * a module (or a function or class, through the module that defines it) in ``lib``:
      the source of that module and of its transitive library imports (``closure``);
    * a module or function outside ``lib`` with a file (a test module): that file's text
      and the closure of the library modules it imports;
    * a function without a file (defined in a notebook): its source, as
      ``inspect.getsource`` reads it;
    * a string: itself (a literal version tag);
    * a ``Path``: that source file, as a module of ``lib`` if it lies there.

    Modules are hashed from their files as they are on disk now, so every process computes
    the same key for the same files.
    """
    h = hashlib.sha256()
    roots: list[str | Path] = []
    for obj in objects:
        if isinstance(obj, str):
            h.update(b"literal\0" + obj.encode() + b"\0")
            continue
        if isinstance(obj, Path):
            file = obj
        else:
            module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
            file = getattr(module, "__file__", None)
        if file is None:  # a notebook cell or the interactive prompt
            h.update(b"source\0" + inspect.getsource(obj).encode() + b"\0")
            continue
        path = Path(file)
        name = _module_name(path)
        if name is None:
            h.update(b"file\0" + path.read_bytes() + b"\0")
        roots.append(name if name is not None else path)
    for name in closure(roots):
        h.update(name.encode() + b"\0" + module_file(name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def modules_behind(*objects: CodeRoot) -> list[str]:
    """The library modules ``code_version(*objects)`` hashes (for reading and for tests)."""
    roots: list[str | Path] = []
    for obj in objects:
        if isinstance(obj, str):
            continue
        if isinstance(obj, Path):
            file = obj
        else:
            module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
            file = getattr(module, "__file__", None)
        if file is not None:
            name = _module_name(Path(file))
            roots.append(name if name is not None else Path(file))
    return closure(roots)
