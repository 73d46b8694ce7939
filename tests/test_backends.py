"""The core on JAX and PyTorch with TensorFlow absent: IMP and CS runs on in-memory
arrays, tickets, interpolation; the tf.data pipelines refuse with a clear error."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import write_tiny_config

ROOT = os.path.dirname(os.path.dirname(__file__))

#: Run in a subprocess whose import path has no TensorFlow (see _hide_tensorflow).
_CORE_RUN = """
import json, sys
import keras
import numpy as np
from keras_lottery.analysis.interpolation import curve_between_states
from keras_lottery.config import load_config
from keras_lottery.errors import MissingExtraError
from keras_lottery.recipes import Recipe
from keras_lottery.rewind import capture_state
from keras_lottery.runs import runner
from keras_lottery.ticket import Ticket

imp_config, cs_config, out = sys.argv[1:]
imp = runner.run(load_config(imp_config, ["pruning.rounds=1"]), out=out, verbose=0)
cs = runner.run(load_config(cs_config), out=out, verbose=0)
recipe, model = runner.prepare(load_config(imp_config))
ticket = Ticket.load(f"{imp}/round_001/ticket.npz")
ticket.apply(model)
model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
start = capture_state(model)
model.fit(recipe.splits.x_train, recipe.splits.y_train, batch_size=16, verbose=0)
curve = curve_between_states(
    model, start, capture_state(model), {"test": recipe.test_data}, points=3
)
try:
    import keras_lottery.data.pipelines
    refusal = None
except MissingExtraError as error:
    refusal = str(error)
print(json.dumps({
    "backend": keras.backend.backend(),
    "imp": json.load(open(f"{imp}/result.json")),
    "cs": json.load(open(f"{cs}/result.json")),
    "density": {n: float(np.mean(m)) for n, m in ticket.masks.items()},
    "curve": len(curve.errors["test"]),
    "refusal": refusal,
    "tf": "tensorflow" in sys.modules,
}))
"""


def _hide_tensorflow(folder) -> str:
    """A folder for the front of PYTHONPATH whose ``sitecustomize`` swaps
    site-packages for a copy (symlinks) without TensorFlow and TensorBoard, so
    ``import tensorflow`` and ``importlib.util.find_spec`` both see it missing, as
    on a machine where it is not installed."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    shadow = folder / "site-packages"
    shadow.mkdir(parents=True)
    for name in os.listdir(site):
        if not name.lower().startswith(("tensorflow", "tensorboard")):
            (shadow / name).symlink_to(os.path.join(site, name))
    (folder / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:] = [{str(shadow)!r} if p == {site!r} else p for p in sys.path]
            """
        )
    )
    return str(folder)


@pytest.mark.parametrize(
    "backend",
    [pytest.param("jax", marks=pytest.mark.slow), "torch"],  # JAX: XLA compiles
)
def test_imp_cs_tickets_and_interpolation_run_without_tensorflow(
    backend, tmp_path, cs_mlp_config
):
    hidden = _hide_tensorflow(tmp_path / "no_tf")
    imp_config = write_tiny_config(tmp_path, baselines="[]")
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([hidden, ROOT]),
    )
    result = subprocess.run(
        [sys.executable, "-c", _CORE_RUN, imp_config, cs_mlp_config, tmp_path / "r"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend and out["tf"] is False
    assert [r["round"] for r in out["imp"]["rounds"]] == [0, 1]
    density = sorted(out["density"].values())  # one round: 50 %, output 75 %
    assert density == pytest.approx([0.5, 0.5, 0.75], abs=0.01)
    (search,) = out["cs"]["search"]  # one search round, then the ticket's training
    assert 0 < search["fraction_remaining"] < 1
    assert out["cs"]["ticket"]["epochs"] == {"search": 2, "ticket": 2, "total": 4}
    assert out["curve"] == 3
    assert "needs TensorFlow: pip install tensorflow-cpu" in out["refusal"]
