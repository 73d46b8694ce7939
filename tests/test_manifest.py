"""keras_lottery.manifest: sizes and sha256 of a finished phase's files, and
the errors a damaged phase gives."""

import json

import pytest

from keras_lottery.errors import CorruptFileError, LotteryError, RunFolderError
from keras_lottery.manifest import (
    finish_phase,
    record_bytes,
    verify_phase,
    write_manifest,
)


@pytest.fixture
def phase(tmp_path):
    directory = tmp_path / "round_002"
    directory.mkdir()
    (directory / "ticket.npz").write_bytes(b"ticket bytes")
    (tmp_path / "rewind_state.npz").write_bytes(b"state")
    finish_phase(directory, ["ticket.npz", "../rewind_state.npz"], {"round": 2})
    return directory


@pytest.mark.backend_neutral
def test_the_manifest_lists_every_file_and_the_record(phase):
    manifest = json.loads((phase / "manifest.json").read_text())
    assert sorted(manifest["files"]) == [
        "../rewind_state.npz",
        "record.json",
        "ticket.npz",
    ]
    assert manifest["files"]["ticket.npz"]["size"] == len(b"ticket bytes")
    assert (phase / "record.json").read_bytes() == record_bytes({"round": 2})
    assert verify_phase(phase)


@pytest.mark.backend_neutral
def test_a_truncated_file_is_named_with_what_to_do(phase):
    (phase / "ticket.npz").write_bytes(b"ticket")
    with pytest.raises(CorruptFileError) as caught:
        verify_phase(phase, "delete round_002 and re-run")
    message = str(caught.value)
    assert message.startswith(f"{phase / 'ticket.npz'} is not a valid file")
    assert "6 bytes instead of 12: truncated or replaced" in message
    assert message.endswith("To recover: delete round_002 and re-run)")
    assert isinstance(caught.value, (LotteryError, OSError))


@pytest.mark.backend_neutral
def test_a_file_of_the_same_size_from_elsewhere_is_caught(phase):
    (phase / "ticket.npz").write_bytes(b"TICKET BYTES")
    with pytest.raises(CorruptFileError, match="same size, other content"):
        verify_phase(phase)
    (phase / "ticket.npz").write_bytes(b"ticket bytes")
    (phase.parent / "rewind_state.npz").write_bytes(b"STATE")
    with pytest.raises(CorruptFileError, match="rewind_state.npz"):
        verify_phase(phase)


@pytest.mark.backend_neutral
def test_missing_files_and_manifests(phase):
    (phase / "record.json").unlink()
    with pytest.raises(RunFolderError, match="record.json is missing"):
        verify_phase(phase)
    (phase / "manifest.json").unlink()
    assert verify_phase(phase, required=False) is False  # before manifests
    with pytest.raises(RunFolderError, match="finished phase without its manifest"):
        verify_phase(phase)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage", b"{}", b"[1, 2]"])
def test_an_unreadable_manifest_is_a_corrupt_file(phase, content):
    (phase / "manifest.json").write_bytes(content)
    with pytest.raises(CorruptFileError, match="manifest.json is not a valid file"):
        verify_phase(phase)


@pytest.mark.backend_neutral
def test_write_manifest_hashes_pending_bytes(tmp_path):
    manifest = write_manifest(tmp_path, [], {"record.json": b"abc"})
    assert manifest["files"]["record.json"] == {
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
