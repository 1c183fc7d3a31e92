"""The artifact cache: built once, keyed by config + computed code version + parents."""

import os
import stat
import warnings

import pytest
import torch

from lib.core import ArtifactCache, CacheWarning, artifact_key, code_version, codegraph


def test_built_once_then_loaded(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []

    def build():
        calls.append(1)
        return {"w": torch.arange(3.0), "acc": 0.5}

    a = cache.get_or_create("model", {"lr": 0.1}, build, code=["v1"])
    b = cache.get_or_create("model", {"lr": 0.1}, build, code=["v1"])
    assert len(calls) == 1 and torch.equal(a["w"], b["w"]) and b["acc"] == 0.5
    assert cache.contains("model", {"lr": 0.1}, code=["v1"])


def test_config_code_or_parent_change_rebuilds(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    build = lambda: calls.append(1) or {"x": torch.zeros(1)}  # noqa: E731
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v1"])
    cache.get_or_create("m", {"lr": 0.2}, build, code=["v1"])
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v2"])
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v1"], depends_on=["dense-key-a"])
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v1"], depends_on=["dense-key-b"])
    assert len(calls) == 5
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v1"], depends_on=["dense-key-b"])
    assert len(calls) == 5


def test_default_code_is_the_builders_module_closure(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build():
        return {"x": torch.ones(1)}

    key = cache.key("m", {}, code=[build])
    # any function of this test file gives the same key: the file and its lib imports
    assert key == cache.key("m", {}, code=[test_built_once_then_loaded])
    cache.get_or_create("m", {}, build)
    assert cache.contains("m", {}, code=[build])
    meta = (tmp_path / f"m-{key}.json").read_text()
    assert "lib.core.codegraph" in meta, "the record of what the key hashed names the modules"


def test_corrupted_artifact_is_reported_by_name_then_rebuilt(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    build = lambda: calls.append(1) or {"x": torch.ones(2)}  # noqa: E731
    cache.get_or_create("m", {}, build, code=["v"])
    path = cache.path("m", cache.key("m", {}, code=["v"]))
    path.write_bytes(path.read_bytes()[:10])
    with pytest.warns(CacheWarning, match=f"{path.name}.*rebuilding"):
        out = cache.get_or_create("m", {}, build, code=["v"])
    assert len(calls) == 2 and torch.equal(out["x"], torch.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt one loads without a word
        cache.get_or_create("m", {}, build, code=["v"])


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        cache = ArtifactCache(tmp_path)
        cache.get_or_create("m", {}, lambda: {"x": torch.ones(1)}, code=["v"])
        for f in tmp_path.glob("m-*"):
            if f.suffix != ".lock":
                assert stat.S_IMODE(f.stat().st_mode) == 0o644, f"{f.name} not readable by others"
        os.umask(0o002)
        cache.get_or_create("m2", {}, lambda: {"x": torch.ones(1)}, code=["v"])
        (art,) = tmp_path.glob("m2-*.pt")
        assert stat.S_IMODE(art.stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_get_or_train_checkpoints_in_the_runs_own_folder_and_cleans_up(tmp_path):
    cache, seen = ArtifactCache(tmp_path), []

    def train(ckpt_dir, run_key):
        seen.append((ckpt_dir, run_key))
        (ckpt_dir / "step-000000001.pt").parent.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / "step-000000001.pt").write_bytes(b"x")
        return {"done": 1}

    cache.get_or_train("run", {"lr": 0.1}, train, code=["v"])
    cache.get_or_train("run", {"lr": 0.2}, train, code=["v"])
    (d1, k1), (d2, k2) = seen
    assert k1 == cache.key("run", {"lr": 0.1}, code=["v"]) and k1 != k2
    assert d1 != d2 and d1.name.endswith(k1), "one folder per run key"
    assert not d1.exists(), "checkpoints go once the artifact is stored"


def test_key_is_canonical_and_rejects_unkeyable_values(tmp_path):
    key = artifact_key("a", {"x": 1, "y": (1, 2)}, "c")
    assert key == artifact_key("a", {"y": [1, 2], "x": 1}, "c")
    with pytest.raises(TypeError, match="cannot key"):
        artifact_key("a", {"x": object()}, "c")
    with pytest.raises(ValueError, match="letters, digits"):
        ArtifactCache(tmp_path).path("../evil", "k")
    with pytest.raises(ValueError, match="give the builder"):
        ArtifactCache(tmp_path).key("a", {}, code=[])


def test_step_limit_is_part_of_every_key(monkeypatch):
    plain = artifact_key("a", {}, "c")
    monkeypatch.setenv("BOOK_MAX_STEPS", "3")
    assert artifact_key("a", {}, "c") != plain, "a dry run must never serve a real run"
    monkeypatch.setenv("BOOK_MAX_STEPS", "0")
    assert artifact_key("a", {}, "c") == plain
    monkeypatch.setenv("BOOK_MAX_STEPS", "abc")
    with pytest.raises(ValueError, match="BOOK_MAX_STEPS='abc'"):
        artifact_key("a", {}, "c")


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    from lib.core import paths

    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert ArtifactCache().directory == tmp_path / "c"


def test_data_dir_is_not_inside_the_cache(tmp_path, monkeypatch):
    from lib.core import paths

    monkeypatch.delenv("BOOK_DATA_DIR", raising=False)
    monkeypatch.delenv("BOOK_CACHE_DIR", raising=False)
    data, cache = paths.data_dir(), paths.cache_dir()
    assert cache not in data.parents and data != cache, "rm -r the cache must keep the data"
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "d"))
    assert paths.data_dir() == tmp_path / "d"
    assert paths.data_dir(tmp_path / "x") == tmp_path / "x"
    from lib.vision import data_root

    assert data_root() == tmp_path / "d"


# --- the computed code version -----------------------------------------------------------------

def _fake_lib(tmp_path, monkeypatch):
    """lib/a -> lib/b -> lib/sub/c (three levels); lib/d unrelated; lib/pkg/{method,task}."""
    root = tmp_path / "repo"
    files = {
        "lib/__init__.py": "",
        "lib/a.py": "from lib import b\n\ndef build():\n    return b.f()\n",
        "lib/b.py": "from .sub.c import g\n\ndef f():\n    return g()\n",
        "lib/sub/__init__.py": "",
        "lib/sub/c.py": "def g():\n    import lib.sub.lazy\n    return 1\n",
        "lib/sub/lazy.py": "X = 1\n",
        "lib/d.py": "def h():\n    return 2\n",
        "lib/pkg/__init__.py": "from . import method, task\n",
        "lib/pkg/method.py": "from .task import dense\n\ndef compress():\n    return dense()\n",
        "lib/pkg/task.py": "from lib import d\n\ndef dense():\n    return d.h()\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(codegraph.paths, "REPO_ROOT", root)
    return root


def test_editing_a_module_three_levels_down_changes_the_key(tmp_path, monkeypatch):
    root = _fake_lib(tmp_path, monkeypatch)
    a = root / "lib/a.py"
    assert codegraph.closure([a]) == ["lib.a", "lib.b", "lib.sub.c", "lib.sub.lazy"]
    before = code_version(a)
    (root / "lib/sub/c.py").write_text("def g():\n    import lib.sub.lazy\n    return 2\n")
    after = code_version(a)
    assert after != before, "lib.a -> lib.b -> lib.sub.c: an edit of c must change a's key"
    (root / "lib/sub/lazy.py").write_text("X = 2\n")  # imported inside a function
    assert code_version(a) != after
    unchanged = code_version(a)
    (root / "lib/d.py").write_text("def h():\n    return 3\n")
    assert code_version(a) == unchanged, "an unrelated module must not change the key"


def test_dense_key_does_not_depend_on_the_method_built_on_it(tmp_path, monkeypatch):
    root = _fake_lib(tmp_path, monkeypatch)
    task, method = root / "lib/pkg/task.py", root / "lib/pkg/method.py"
    assert codegraph.closure([task]) == ["lib.d", "lib.pkg.task"], (
        "the package __init__ that re-exports the method is not a dependency of task")
    dense_key, method_key = code_version(task), code_version(method)
    method.write_text("from .task import dense\n\ndef compress():\n    return 2 * dense()\n")
    assert code_version(task) == dense_key and code_version(method) != method_key
    task.write_text("from lib import d\n\ndef dense():\n    return -d.h()\n")
    assert code_version(method) != method_key, "the method is rebuilt when its dense model is"


def test_real_library_graph():
    import lib.asr.recipes as recipes
    import lib.papers.prune_quant as pq

    behind = codegraph.modules_behind(pq)
    assert {"lib.quant.kmeans", "lib.sparse.knapsack", "lib.core.train", "lib.quant.size",
            "lib.sparse.masks", "lib.vision.models"} <= set(behind)
    assert not any(m.startswith(("lib.rl", "lib.asr", "lib.tabular")) for m in behind)
    dense = codegraph.modules_behind(recipes.train_dense)
    assert {"lib.asr.model", "lib.asr.training", "lib.asr.data"} <= set(dense)
    assert not any(m.startswith("lib.papers") for m in dense), "the dense recogniser is "\
        "keyed on the speech stack only, not on the chapters fine-tuning it"


def test_module_version_follows_the_file_on_disk(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "probe_mod.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("probe_mod")
    before = code_version(mod)
    (tmp_path / "probe_mod.py").write_text("def f():\n    return 2\n")
    assert code_version(mod) != before, "an edited module must change the key"


def test_an_artifact_that_would_not_load_back_is_refused_when_built(tmp_path):
    """A numpy array or a dataclass is saved fine but fails torch.load(weights_only=True):
    stored, the artifact would be rebuilt on every later run. The cache refuses it at once,
    naming the place, and writes nothing."""
    import dataclasses

    import numpy as np

    from lib.core.cache import unloadable_part

    @dataclasses.dataclass
    class Widths:
        stem: int = 8

    cache = ArtifactCache(tmp_path)
    with pytest.raises(TypeError, match=r"artifact\['runs'\]\[1\]\['scores'\]: numpy.ndarray"):
        cache.get_or_create("bad", {"n": 1}, lambda: {"runs": [{}, {"scores": np.zeros(3)}]})
    assert not list(tmp_path.glob("bad-*.pt"))
    assert "Widths" in unloadable_part({"w": Widths()})
    assert "numpy.float64" in unloadable_part({"score": np.float64(0.5)})  # a float subclass
    good = {"state": {"w": torch.ones(2)}, "rows": [1, 2.5, "x", None, (torch.float32,)],
            "score": float(np.float64(0.5))}
    assert unloadable_part(good) is None
    cache.get_or_create("good", {"n": 1}, lambda: good)
    again = cache.get_or_create("good", {"n": 1}, lambda: pytest.fail("rebuilt"))
    assert torch.equal(again["state"]["w"], torch.ones(2))
