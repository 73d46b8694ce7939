"""keras_lottery.identity: the data fingerprint and software a run folder was
made with; resumes with other data or another backend are refused."""

import hashlib
import json

import keras
import pytest

from keras_lottery import identity
from keras_lottery.config import load_config
from keras_lottery.errors import RunFolderError


@pytest.mark.backend_neutral
def test_file_sha256_is_the_digest_of_the_bytes_and_follows_changes(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"abc")
    assert identity.file_sha256(path) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abcd")  # another size: the cache key changes
    assert identity.file_sha256(path) == hashlib.sha256(b"abcd").hexdigest()


@pytest.mark.backend_neutral
def test_data_file_is_the_path_or_the_env_folder_file(tmp_path, monkeypatch):
    monkeypatch.delenv(identity.DATA_ENV, raising=False)
    assert identity.data_digest(load_config(None).data) is None  # built-in mnist
    (tmp_path / "mnist.npz").write_bytes(b"xyz")
    monkeypatch.setenv(identity.DATA_ENV, str(tmp_path))
    data = load_config(None).data
    assert identity.data_file(data) == str(tmp_path / "mnist.npz")
    assert identity.data_digest(data) == hashlib.sha256(b"xyz").hexdigest()


@pytest.mark.backend_neutral
def test_identity_records_backend_and_versions(tmp_path):
    config = load_config(None, ["data.name=digits"])
    saved = identity.write_identity(str(tmp_path), config)
    on_disk = json.loads((tmp_path / "identity.json").read_text())
    assert on_disk == saved
    assert saved["backend"] == keras.backend.backend()
    assert saved["manifests"] is True
    assert saved["data"] == {"name": "digits", "file": None, "sha256": None}
    assert saved["versions"]["keras"] == keras.__version__
    assert keras.backend.backend() in saved["versions"] or saved["backend"] not in (
        "tensorflow",
        "jax",
    )
    assert identity.check_identity(str(tmp_path), config) == []


def _edit(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.backend_neutral
def test_another_backend_or_other_data_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(identity.DATA_ENV, str(tmp_path))
    (tmp_path / "mnist.npz").write_bytes(b"first")
    config = load_config(None)
    identity.write_identity(str(tmp_path), config)
    (tmp_path / "mnist.npz").write_bytes(b"second, fixed in place")
    with pytest.raises(RunFolderError, match="was started with data .*mnist.npz"):
        identity.check_identity(str(tmp_path), config)
    identity.write_identity(str(tmp_path), config)
    _edit(tmp_path / "identity.json", backend="other")
    with pytest.raises(
        RunFolderError, match="started with the other backend; this process uses"
    ):
        identity.check_identity(str(tmp_path), config)
    assert identity.check_identity(str(tmp_path), config, backend=False) == []


@pytest.mark.backend_neutral
def test_version_changes_only_warn(tmp_path):
    config = load_config(None, ["data.name=digits"])
    identity.write_identity(str(tmp_path), config)
    _edit(tmp_path / "identity.json", versions={"keras": "0.0.1"})
    changes = identity.check_identity(str(tmp_path), config)
    assert changes == [f"keras 0.0.1 -> {keras.__version__}"]
