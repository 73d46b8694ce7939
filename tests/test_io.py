"""keras_lottery._io: helpers shared by the run folders."""

from keras_lottery._io import finished_phases


def _phase(root, name, finished=True):
    folder = root / name
    folder.mkdir()
    if finished:
        (folder / "record.json").write_text("{}")


def test_finished_phases_stop_at_the_first_gap_or_unfinished_phase(tmp_path):
    for name in ("round_000", "round_001", "round_003"):
        _phase(tmp_path, name)
    _phase(tmp_path, "round_002", finished=False)  # interrupted: no record.json
    _phase(tmp_path, "search_000")  # another prefix is not counted
    assert finished_phases(tmp_path, "round") == [0, 1]
    assert finished_phases(tmp_path, "search") == [0]
    assert finished_phases(tmp_path / "round_002", "round") == []
