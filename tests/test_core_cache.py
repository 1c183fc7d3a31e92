import pytest
import torch

from lib.core import ArtifactCache, artifact_key, code_version


def test_built_once_then_loaded(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []

    def build():
        calls.append(1)
        return {"w": torch.arange(3.0), "acc": 0.5}

    a = cache.get_or_create("model", {"lr": 0.1}, build, code=["v1"])
    b = cache.get_or_create("model", {"lr": 0.1}, build, code=["v1"])
    assert len(calls) == 1 and torch.equal(a["w"], b["w"]) and b["acc"] == 0.5
    assert cache.contains("model", {"lr": 0.1}, code=["v1"])


def test_config_or_code_change_rebuilds(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    build = lambda: calls.append(1) or {"x": torch.zeros(1)}  # noqa: E731
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v1"])
    cache.get_or_create("m", {"lr": 0.2}, build, code=["v1"])
    cache.get_or_create("m", {"lr": 0.1}, build, code=["v2"])
    assert len(calls) == 3


def test_corrupted_artifact_is_rebuilt(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    build = lambda: calls.append(1) or {"x": torch.ones(2)}  # noqa: E731
    cache.get_or_create("m", {}, build)
    path = cache.path("m", artifact_key("m", {}, code_version()))
    path.write_bytes(path.read_bytes()[:10])
    out = cache.get_or_create("m", {}, build)
    assert len(calls) == 2 and torch.equal(out["x"], torch.ones(2))


def test_code_version_tracks_source():
    import lib.core.seeding as seeding
    import lib.core.train as train

    assert code_version(seeding) == code_version(seeding)
    assert code_version(seeding) != code_version(train)
    assert len(code_version(seeding)) == 16


def test_key_is_canonical_and_rejects_unkeyable_values(tmp_path):
    key = artifact_key("a", {"x": 1, "y": (1, 2)}, "c")
    assert key == artifact_key("a", {"y": [1, 2], "x": 1}, "c")
    with pytest.raises(TypeError, match="cannot key"):
        artifact_key("a", {"x": object()}, "c")
    with pytest.raises(ValueError, match="letters, digits"):
        ArtifactCache(tmp_path).path("../evil", "k")


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    from lib.core import paths

    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert ArtifactCache().directory == tmp_path / "c"


def test_module_version_follows_the_file_on_disk(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "probe_mod.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("probe_mod")
    before = code_version(mod)
    assert before == code_version("def f():\n    return 1\n")  # the file's text, exactly
    (tmp_path / "probe_mod.py").write_text("def f():\n    return 2\n")
    assert code_version(mod) != before, "an edited module must change the key"
