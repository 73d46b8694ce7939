"""keras_lottery._io: atomic writes (a file is either old or complete)."""

import json
import os

import numpy as np
import pytest

from keras_lottery._io import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_json,
    load_arrays,
    save_arrays,
)


def test_arrays_round_trip_in_order(tmp_path):
    # 12 arrays: arr_10 and arr_11 must come back last, not after arr_1.
    arrays = [np.full((i + 1,), i, "float32") for i in range(12)]
    arrays.append(np.array([[True, False]]))
    save_arrays(tmp_path / "deep" / "a.npz", arrays)  # creates the folder
    loaded = load_arrays(tmp_path / "deep" / "a.npz")
    assert len(loaded) == len(arrays)
    for a, b in zip(arrays, loaded, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    atomic_write_json(path, {"round": 1})
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    assert json.loads(path.read_text()) == {"round": 1}
    assert os.listdir(tmp_path) == ["record.json"]


def test_json_is_sorted_and_stringifies_unknown_types(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"b": 1, "a": tmp_path})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")
    assert json.loads(text) == {"a": str(tmp_path), "b": 1}
    atomic_copy(path, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == text


def test_readers_name_the_damaged_file(tmp_path):
    from keras_lottery._io import read_json
    from keras_lottery.errors import CorruptFileError

    (tmp_path / "r.json").write_text('{"a": 1')
    with pytest.raises(CorruptFileError, match=r"r.json is not a valid file: expected"):
        read_json(tmp_path / "r.json", "a record")
    (tmp_path / "r.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "r.json", "a record", required=("a",)) == {"a": 1}
    with pytest.raises(FileNotFoundError):  # missing is not damaged
        read_json(tmp_path / "missing.json", "a record")
    (tmp_path / "a.npz").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="expected a state .npz.*EOFError"):
        load_arrays(tmp_path / "a.npz", "a state .npz")


def test_a_zip_directory_hiding_arrays_is_refused(tmp_path):
    from keras_lottery.errors import CorruptFileError

    save_arrays(tmp_path / "a.npz", [np.zeros(3), np.ones(2)])
    data = bytearray((tmp_path / "a.npz").read_bytes())
    # Lengthen the first central-directory entry's comment: zipfile then reads
    # one entry where the end record lists two.
    first = data.index(b"PK\x01\x02")
    second = data.index(b"PK\x01\x02", first + 4)
    data[first + 32] = data.index(b"PK\x05\x06") - second  # the second entry
    (tmp_path / "a.npz").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="lists 2 arrays, 1 read"):
        load_arrays(tmp_path / "a.npz")


def test_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600


def test_leftover_temporaries_are_removed_anywhere_below(tmp_path):
    from keras_lottery._io import remove_leftover_temps

    (tmp_path / "round_001").mkdir()
    left = [tmp_path / ".tmp-abc", tmp_path / "round_001" / ".tmp-x1y2"]
    for path in left:
        path.write_bytes(b"half")
    (tmp_path / "round_001" / "ticket.npz").write_bytes(b"kept")
    assert sorted(remove_leftover_temps(tmp_path)) == sorted(map(str, left))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["round_001", "ticket.npz"]
