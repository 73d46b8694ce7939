"""keras_lottery.methods.checkpoints: finished phases are verified, and a
missing record cannot drop a phase."""

import json

import pytest

from keras_lottery import paths
from keras_lottery.errors import RunFolderError
from keras_lottery.manifest import finish_phase
from keras_lottery.methods.checkpoints import verified_phases

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _phases(root, n, manifests=True):
    (root / "identity.json").write_text(json.dumps({"manifests": manifests}))
    for r in range(n):
        folder = root / f"round_{r:03d}"
        folder.mkdir()
        (folder / "trained.npz").write_bytes(b"weights %d" % r)
        finish_phase(folder, ["trained.npz"], {"round": r})


def test_finished_phases_in_order_and_stray_folders_ignored(tmp_path):
    _phases(tmp_path, 3)
    (tmp_path / "round_notes").mkdir()
    assert verified_phases(str(tmp_path), paths.ROUND) == [0, 1, 2]


def test_a_record_missing_before_a_finished_phase_is_refused(tmp_path):
    _phases(tmp_path, 3)
    (tmp_path / "round_001" / "record.json").unlink()
    with pytest.raises(RunFolderError) as caught:
        verified_phases(str(tmp_path), paths.ROUND)
    assert str(caught.value).startswith(
        f"{tmp_path / 'round_002'} is finished but "
        f"{tmp_path / 'round_001' / 'record.json'} is missing"
    )


def test_a_manifest_without_its_record_is_a_killed_phase_unless_the_run_is_over(
    tmp_path,
):
    _phases(tmp_path, 2)
    (tmp_path / "round_001" / "record.json").unlink()  # killed between the two
    assert verified_phases(str(tmp_path), paths.ROUND) == [0]
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(RunFolderError, match="round_001 has a manifest but"):
        verified_phases(str(tmp_path), paths.ROUND)


def test_phases_before_manifests_are_accepted_with_a_warning(tmp_path, capsys):
    _phases(tmp_path, 2, manifests=False)
    (tmp_path / "round_000" / "manifest.json").unlink()
    assert verified_phases(str(tmp_path), paths.ROUND) == [0, 1]
    assert "round [0] of" in capsys.readouterr().out
    (tmp_path / "identity.json").write_text(json.dumps({"manifests": True}))
    with pytest.raises(RunFolderError, match="without its manifest.json"):
        verified_phases(str(tmp_path), paths.ROUND)
