"""keras_lottery.runs.locking: one process per run folder; a lock left by a
killed process is not in the way."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from keras_lottery.errors import RunFolderError
from keras_lottery.runs.locking import lock_path, run_folder_lock

# Another process holding the lock as keras_lottery takes it (flock, PID in
# the file), without importing keras_lottery (and TensorFlow) first.
HOLD = """
import fcntl, os, sys, time
handle = open(os.path.join(sys.argv[1], ".lock"), "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.seek(0); handle.truncate(); handle.write(f"{os.getpid()}\\n"); handle.flush()
print("locked", flush=True)
time.sleep(60)
"""


def _holder(directory):
    """A process holding the lock (it prints 'locked' once it does)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


@pytest.mark.backend_neutral
def test_a_second_process_is_told_the_pid_and_a_killed_holder_frees_it(tmp_path):
    process = _holder(tmp_path)
    try:
        with pytest.raises(RunFolderError) as caught:
            with run_folder_lock(str(tmp_path)):
                pass
        assert str(caught.value) == (
            f"{tmp_path} is in use by another keras-lottery process (PID "
            f"{process.pid}). Wait for it to finish, or pass --wait (wait=True) "
            "to start when it does."
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # The file stays with the dead PID in it; the lock went with the process.
    assert open(lock_path(str(tmp_path))).read().strip() == str(process.pid)
    with run_folder_lock(str(tmp_path)):
        assert open(lock_path(str(tmp_path))).read().strip() == str(os.getpid())


@pytest.mark.backend_neutral
def test_wait_blocks_until_the_holder_releases(tmp_path, capsys):
    released = []
    with run_folder_lock(str(tmp_path)):

        def other():
            with run_folder_lock(str(tmp_path), wait=True):
                released.append(time.monotonic())

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        assert not released  # still waiting
        end = time.monotonic()
    thread.join(5)
    assert released and released[0] >= end
    assert f"waiting for PID {os.getpid()} to release" in capsys.readouterr().out


def test_the_cli_waits_or_exits_2_naming_the_holder(imp_run, capsys):
    from keras_lottery import cli

    parser = cli.build_parser()
    assert parser.parse_args(["run", "c.yaml", "--wait"]).wait is True
    for command in (["branch", "r", "--round", "1", "--kind", "random_prune"],):
        assert parser.parse_args(command).wait is False
        assert parser.parse_args([*command, "--wait"]).wait is True
    assert parser.parse_args(["instability", "r", "--round", "1", "--wait"]).wait
    with run_folder_lock(str(imp_run)):
        args = ["branch", str(imp_run), "--round", "1", "--kind", "shuffle_masks"]
        assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-lottery: error: {imp_run} is in use by another")
    assert f"(PID {os.getpid()})" in err
    assert not (imp_run / "branches").exists()
