"""keras_lottery.paths: every on-disk name of a run folder, stated once."""

import os

from keras_lottery import paths


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
    assert paths.finished_phases(tmp_path, paths.ROUND) == [0, 1]
    assert paths.finished_phases(tmp_path, paths.SEARCH) == [0]
    assert paths.finished_phases(tmp_path / "round_002", paths.ROUND) == []


def test_finished_phases_read_the_folders_the_phase_helpers_name(tmp_path):
    run = str(tmp_path)
    for r in range(12):  # past round 9: numbers, not names, are sorted
        os.makedirs(paths.round_dir(run, r))
        with open(paths.round_record(run, r), "w") as handle:
            handle.write("{}")
    os.makedirs(paths.search_dir(run, 0))
    with open(paths.record(paths.search_dir(run, 0)), "w") as handle:
        handle.write("{}")
    assert paths.finished_phases(run, paths.ROUND) == list(range(12))
    assert paths.finished_phases(run, paths.SEARCH) == [0]


def test_run_folder_layout():
    run = os.path.join("runs", "imp_3f2a9c1d0b7e")
    assert paths.run_dir("runs", "imp_3f2a9c1d0b7e") == run
    assert paths.round_ticket(run, 3) == os.path.join(run, "round_003", "ticket.npz")
    assert paths.round_record(run, 3) == os.path.join(run, "round_003", "record.json")
    assert paths.round_trained(run, 0) == os.path.join(run, "round_000", "trained.npz")
    assert paths.search_state(run, 1) == os.path.join(run, "search_001", "state.npz")
    assert paths.extra_rewind_state(run, "50it") == os.path.join(
        run, "extra_rewinds", "50it", "rewind_state.npz"
    )
    assert paths.config(run) == os.path.join(run, "config.yaml")
    assert paths.cs_ticket(run) == os.path.join(run, "ticket.npz")


def test_a_run_is_finished_once_its_result_exists(tmp_path):
    run = str(tmp_path)
    assert not paths.is_finished(run)
    with open(paths.result(run), "w") as handle:
        handle.write("{}")
    assert paths.is_finished(run)


def test_retrain_parts_reads_back_what_retrain_dir_names():
    folder = paths.retrain_dir("runs/imp_3f", 2, "retrain_0a1b2c3d4e5f", 1)
    assert paths.retrain_parts(folder) == ("runs/imp_3f", 2, "retrain_0a1b2c3d4e5f", 1)
    assert paths.retrain_parts(folder + os.sep) == paths.retrain_parts(folder)
    for other in (
        "runs/imp_3f",
        paths.branch_dir("runs/imp_3f", 2, "random_reinit", 0),
        "runs/imp_3f/retrain/round_x/retrain_0a/seed_1",
        "runs/imp_3f/retrain/round_002/other/seed_1",
        "retrain/round_002/retrain_0a/seed_1",
    ):
        assert paths.retrain_parts(other) is None, other
