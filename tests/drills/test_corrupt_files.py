"""Drill: files of a run folder damaged byte-wise (truncated, bytes flipped,
replaced by garbage, emptied) are either read back exactly as written or
refused with one of the library's own errors (``LotteryError``: a
``CorruptFileError`` naming the path and what the file should be, or a
``ConfigError`` for YAML); never a raw numpy/zipfile/json error, never
different contents.

``make test`` runs a few derandomized examples per file kind; the ``drills``
marker runs many more (``make drills``).
"""

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_lottery import models, paths
from keras_lottery._io import atomic_write_json, load_arrays, save_arrays
from keras_lottery.config import DataConfig, RunConfig, load_config
from keras_lottery.data import load_dataset
from keras_lottery.errors import ConfigError, CorruptFileError, LotteryError
from keras_lottery.methods.checkpoints import (
    IMPCheckpoints,
    phase_records,
    read_record,
)
from keras_lottery.methods.records import RoundRecord
from keras_lottery.rewind import capture_state
from keras_lottery.ticket import Ticket
from keras_lottery.training import TrainingRecord
from tests.conftest import write_tiny_dataset

KINDS = ("ticket", "state", "record", "config", "dataset")


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One valid file of each kind, and how to read it back."""
    folder = tmp_path_factory.mktemp("originals")
    model = models.get("lenet_300_100", input_shape=(4, 4, 1), hidden=[6])
    ticket = Ticket.from_model(model, method="imp", round=0)
    ticket.save(folder / "ticket.npz")
    state = [np.array(v) for v in capture_state(model)]
    save_arrays(folder / "state.npz", state)
    training = TrainingRecord(
        {"loss": [0.5]}, 1, 10, 0.1, None, {"loss": 0.5}, {}, None
    )
    record = RoundRecord(0, 1.0, {"output": 1.0}, training)
    atomic_write_json(folder / "record.json", record.to_dict())
    (folder / "config.yaml").write_text(
        RunConfig().to_yaml().replace("rounds: null", "rounds: 2")
    )
    write_tiny_dataset(folder)
    shutil.move(folder / "tiny.npz", folder / "dataset.npz")
    run = folder / "run"
    (run / "round_000").mkdir(parents=True)
    save_arrays(run / "round_000" / "trained.npz", state)
    save_arrays(run / "rewind_state.npz", state)
    return _Originals(
        folder=folder,
        model=model,
        ticket=ticket,
        state=state,
        bytes={
            kind: (folder / name).read_bytes()
            for kind, name in zip(
                KINDS,
                (
                    "ticket.npz",
                    "state.npz",
                    "record.json",
                    "config.yaml",
                    "dataset.npz",
                ),
                strict=True,
            )
        },
    )


class _Originals(dict):
    """The original files (a dict) with a short repr for hypothesis's reports."""

    def __init__(self, **items):
        super().__init__(items)

    def __repr__(self) -> str:
        return "<original files>"


def _read(kind, path, originals):
    """Reads ``path`` as ``kind``; asserts what is read equals the original."""
    if kind == "ticket":
        got, want = Ticket.load(path), originals["ticket"]
        assert got.layers == want.layers and got.variables == want.variables
        for name, mask in want.masks.items():
            np.testing.assert_array_equal(got.masks[name], mask)
        for a, b in zip(got.weights, want.weights, strict=True):
            np.testing.assert_array_equal(a, b)
    elif kind == "state":
        got = load_arrays(path, "a model state .npz")
        for a, b in zip(got, originals["state"], strict=True):
            np.testing.assert_array_equal(a, b)
    elif kind == "record":
        phase_records(path.parent.parent, paths.ROUND)  # what reports read
        IMPCheckpoints(path.parent.parent).resume(originals["model"])  # parses all
    elif kind == "config":
        load_config(path)
    else:
        load_dataset(DataConfig(name="tiny", path=str(path), validation_size=10))


def _target(kind, folder):
    if kind == "record":
        return folder / "run" / "round_000" / "record.json"
    return folder / {"config": "c.yaml"}.get(kind, f"{kind}.npz")


def _corrupt(data: bytes, how) -> bytes:
    kind = how[0]
    if kind == "truncate":
        return data[: int(how[1] * len(data))]
    if kind == "flip":
        out = bytearray(data)
        for where, mask in how[1]:
            out[int(where * len(out))] ^= mask
        return bytes(out)
    if kind == "garbage":
        return how[1]
    if kind == "splice":  # a valid prefix followed by garbage
        return data[: int(how[1] * len(data))] + how[2]
    return b""


CORRUPTIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(
        st.just("flip"),
        st.lists(
            st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
            min_size=1,
            max_size=8,
        ),
    ),
    st.tuples(st.just("garbage"), st.binary(max_size=3000)),
    st.tuples(st.just("splice"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.just(("empty",)),
)


def _check(kind, how, originals):
    folder = originals["folder"]
    path = _target(kind, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_corrupt(originals["bytes"][kind], how))
    try:
        _read(kind, path, originals)
    except LotteryError as error:
        assert str(path) in str(error) or kind in ("config", "dataset"), error
        if kind in ("ticket", "state", "record"):
            assert isinstance(error, CorruptFileError), error


_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20, derandomize=True, database=None, **_SETTINGS)
@given(how=CORRUPTIONS)
def test_corrupt_file_gives_a_clear_error_or_the_same_contents(kind, how, originals):
    _check(kind, how, originals)


@pytest.mark.drills
@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=1000, database=None, **_SETTINGS)
@given(how=CORRUPTIONS)
def test_corrupt_file_drill(kind, how, originals):
    _check(kind, how, originals)


# ------------------------------------------------------------- the cases


@pytest.mark.parametrize(
    "data,detail",
    [
        (b"", "EOFError"),
        (b"not a zip at all, but long enough" * 5, "pickled"),
    ],
)
def test_empty_and_garbage_tickets(data, detail, tmp_path, originals):
    path = tmp_path / "ticket.npz"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as error:
        Ticket.load(path)
    message = str(error.value)
    assert message.startswith(f"{path} is not a valid file: expected a ticket .npz")
    assert detail in message


def test_truncated_ticket(tmp_path, originals):
    path = tmp_path / "ticket.npz"
    path.write_bytes(originals["bytes"]["ticket"][:-100])
    with pytest.raises(CorruptFileError, match="BadZipFile"):
        Ticket.load(path)


def test_a_state_npz_is_not_a_ticket(tmp_path, originals):
    path = tmp_path / "trained.npz"
    path.write_bytes(originals["bytes"]["state"])
    with pytest.raises(CorruptFileError) as error:
        Ticket.load(path)
    assert "no 'metadata' entry" in str(error.value)
    assert "a state or trained.npz is not a ticket" in str(error.value)


@pytest.mark.parametrize(
    "text,detail",
    [
        ("{}", "no ['round', 'fraction_remaining', 'ticket'] entries"),
        ('{"round": 0}', "no ['fraction_remaining', 'ticket'] entries"),
        ("[1, 2]", "holds a JSON list, not an object"),
        ("\xff\xfe garbage", "UnicodeDecodeError"),
        ('{"round": 0, ', "JSONDecodeError"),
        ("", "JSONDecodeError"),
    ],
)
def test_bad_round_records(text, detail, tmp_path):
    directory = tmp_path / "run" / "round_000"
    directory.mkdir(parents=True)
    (directory / "record.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(CorruptFileError) as error:
        phase_records(tmp_path / "run", paths.ROUND)
    assert str(directory / "record.json") in str(error.value)
    assert detail in str(error.value)


def test_read_record_requires_keys(tmp_path):
    (tmp_path / "record.json").write_text(json.dumps({"kind": "x"}))
    with pytest.raises(CorruptFileError, match=r"no \['round'\] entries"):
        read_record(tmp_path, required=("round",))


def test_broken_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pruning:\n  rounds: [2\n")
    with pytest.raises(ConfigError, match=rf"{path} is not a valid YAML config"):
        load_config(path)


def test_resume_parses_whole_round_records(originals):
    run = originals["folder"] / "run"
    (run / "round_000" / "record.json").write_text('{"round": 0, "ticket": {}}')
    with pytest.raises(CorruptFileError) as error:
        IMPCheckpoints(run).resume(originals["model"])
    assert "expected a RoundRecord record.json of a run folder" in str(error.value)
    assert "no ['fraction_remaining', 'layers_remaining'] entries" in str(error.value)
