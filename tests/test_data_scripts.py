"""data_scripts/fetch_vision.py against a local HTTP server: verified, resumed, unpacked into
the exact layout the loaders read, under the book's data root."""

import gzip
import hashlib
import importlib.util
import io
import tarfile

import pytest

from lib.core.paths import REPO_ROOT
from lib.vision import vision_dataset
from tests.fixtures.formats import write_cifar10, write_mnist
from tests.fixtures.http import Handler, serve


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script",
                                                  REPO_ROOT / "data_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnist_from_a_mirror_is_verified_resumed_and_readable(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    script = _script("fetch_vision")
    write_mnist(tmp_path / "src", 20, 10)
    files, resources = {}, []
    for raw in sorted((tmp_path / "src" / "MNIST" / "raw").iterdir()):
        data = gzip.compress(raw.read_bytes())
        files[f"/mnist/{raw.name}.gz"] = data
        resources.append((f"{raw.name}.gz", hashlib.md5(data).hexdigest()))
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "data"))
    with serve(files) as url:
        Handler.cut_after = 100  # the first file is cut off: the rerun resumes it
        assert script.main(["mnist", "--mirror", f"{url}/mnist"]) == 1
        assert script.main(["mnist", "--mirror", f"{url}/mnist"]) == 0
        assert any(r and r.startswith("bytes=100-") for r in Handler.ranges_seen)
    assert len(vision_dataset("mnist", True)) == 20 and len(vision_dataset("mnist", False)) == 10


def test_cifar10_archive_mismatch_is_refused_and_not_unpacked(tmp_path, monkeypatch, capsys):
    from torchvision.datasets import CIFAR10

    script = _script("fetch_vision")
    write_cifar10(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)  # the published md5 of the real one
    with serve({"/cifar.tgz": buf.getvalue()}) as url:
        code = script.main(["cifar10", "--root", str(tmp_path / "data"),
                            "--mirror", f"{url}/cifar.tgz"])
    assert code == 1 and "does not match the published md5" in capsys.readouterr().err
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists(), "never unpacked"
    assert (tmp_path / "data" / "cifar-10-python.tar.gz.corrupt").exists()


def test_imagenet_archives_are_checked_against_published_md5s(tmp_path, capsys):
    script = _script("fetch_vision")
    assert script.main(["imagenet", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ILSVRC2012_img_train.tar" in err and str(tmp_path / "imagenet") in err
    (tmp_path / "imagenet").mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                 "ILSVRC2012_devkit_t12.tar.gz"):
        (tmp_path / "imagenet" / name).write_bytes(b"not the real archive")
    assert script.main(["imagenet", "--root", str(tmp_path)]) == 1
    assert "does not match the published md5" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imagenet"])
def test_missing_data_names_the_command_and_the_exact_path(tmp_path, monkeypatch, name):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError) as err:
        vision_dataset(name, True)
    assert f"fetch_vision.py {name} --root {tmp_path / 'root'}" in str(err.value)
