"""keras_lottery.export.saved_model: SavedModels of masked models."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_lottery.errors import OutputExistsError
from keras_lottery.export import export_saved_model, size_report
from tests.conftest import tensorflow_only

# Runs in a fresh interpreter: TensorFlow only, keras_lottery never imported.
LOADER = """
import sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
signature = served.signatures["serving_default"]
inputs = list(signature.structured_input_signature[1])
outputs = signature(inputs=tf.constant(x))
np.save(sys.argv[3], outputs["output_0"].numpy())
assert not [m for m in sys.modules if m.startswith("keras_lottery")]
print("inputs", inputs)
"""


@tensorflow_only
def test_loads_without_keras_lottery_in_a_fresh_process(pruned_convnet, tmp_path, rng):
    model = pruned_convnet
    path = tmp_path / "ticket"
    export_saved_model(model, path)
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(path),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "inputs ['inputs']" in done.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), atol=1e-5
    )


@tensorflow_only
def test_quiet_named_serve_endpoint_each_variable_stored_once(
    pruned_convnet, tmp_path, rng, capfd
):
    import tensorflow as tf

    model = pruned_convnet
    path = str(tmp_path / "ticket")
    export_saved_model(model, path)
    out, err = capfd.readouterr()
    assert "Captures" not in out + err and "Saved artifact" not in out + err
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]
    served = tf.saved_model.load(path)
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5
    )
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    stored = [k for k in reader.get_variable_to_shape_map() if "VARIABLE_VALUE" in k]
    plain_variables = len(model.weights) - 3  # the three masks are not exported
    assert len(stored) == plain_variables
    data = os.path.join(path, "variables", "variables.data-00000-of-00001")
    assert os.path.getsize(data) < 1.2 * size_report(model).dense_bytes + 1024
    with pytest.raises(OutputExistsError):
        export_saved_model(model, path)


@tensorflow_only
def test_failed_export_leaves_no_partial_folder(pruned_convnet, tmp_path, monkeypatch):
    from keras.export import ExportArchive

    def broken_write(self, path, *args, **kwargs):
        os.makedirs(path)
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(ExportArchive()), "write_out", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(pruned_convnet, str(tmp_path / "ticket"))
    assert os.listdir(tmp_path) == []
    assert keras.backend.backend() == "tensorflow"
