"""The core under JAX's ``keras.distribution`` on 2 host CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=2`` must be set before JAX
initializes, so the checks run in one child process (whatever backend this lane
runs) that prints a JSON of what it saw.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")
ROOT = os.path.dirname(os.path.dirname(__file__))

CHILD = textwrap.dedent(
    """
    import json
    import jax
    import keras
    import numpy as np
    from keras import ops
    from keras_lottery import pruning
    from keras_lottery.gradual import GradualPruning
    from keras_lottery.methods.imp import IterativeMagnitudePruning
    from keras_lottery.pruning_schedules import OneShot
    from tests.helpers import classification_data, mlp

    x, y = classification_data(n=64, inputs=8, classes=3)


    def build():
        keras.utils.set_random_seed(0)
        model = mlp()
        model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model


    def exactly_zero(model):
        return all(
            bool(np.all(ops.convert_to_numpy(l.raw_kernel)[~l.get_mask()] == 0))
            for l in pruning.masked_layers(model)
        )


    reference = build()  # one device, no distribution
    weights = reference.get_weights()
    ref_masks = pruning.prune_magnitude(reference, 0.5)
    out = {"devices": len(jax.devices())}

    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices())
    layouts = keras.distribution.LayoutMap(mesh)
    # LayoutMap keys are re.fullmatch patterns; the mask takes its kernel's layout
    layouts[".*fc1/(kernel|mask)"] = (None, "model")
    distributions = {
        "data_parallel": keras.distribution.DataParallel(devices=jax.devices()),
        "model_parallel": keras.distribution.ModelParallel(
            layout_map=layouts, batch_dim_name="batch"
        ),
    }
    for name, distribution in distributions.items():
        seen = out[name] = {}
        with distribution.scope():
            model = build()
            model.set_weights(weights)
            fc1 = model.get_layer("fc1")
            seen["shardings"] = [
                list(fc1.raw_kernel.value.sharding.spec),
                list(fc1.mask.value.sharding.spec),
            ]
            masks = pruning.prune_magnitude(model, 0.5)
            seen["prune_identical"] = all(
                np.array_equal(masks[k], ref_masks[k])
                and np.array_equal(pruning.get_masks(model)[k], ref_masks[k])
                for k in ref_masks
            )
            pruning.set_masks(model, {k: ~v for k, v in ref_masks.items()})
            pruning.set_masks(model, ref_masks)
            seen["set_identical"] = all(
                np.array_equal(pruning.get_masks(model)[k], ref_masks[k])
                for k in ref_masks
            )
            now = pruning.get_masks(model)
            seen["counts"] = {k: int(v.sum()) for k, v in now.items()}
            history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
            seen["loss"] = history.history["loss"]
            seen["zero_after_fit"] = exactly_zero(model)
            seen["masks_kept"] = all(
                np.array_equal(pruning.get_masks(model)[k], ref_masks[k])
                for k in ref_masks
            )
            gradual = build()
            callback = GradualPruning(OneShot(0.5, at_step=2))
            gradual.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
            seen["gradual_density"] = callback.events[-1]["density"]
            seen["zero_after_gradual"] = exactly_zero(gradual)
            imp = IterativeMagnitudePruning(
                fraction=0.2, rounds=1, rewind="0it", baselines=[], verbose=0
            )
            result = imp.run(build(), x, y, epochs=1, batch_size=16, verbose=0)
            seen["imp_rounds"] = [r.round for r in result.rounds]
            seen["imp_remaining"] = result.rounds[-1].fraction_remaining
            seen["mask_sharding_after"] = list(fc1.mask.value.sharding.spec)
    out["reference_counts"] = {k: int(v.sum()) for k, v in ref_masks.items()}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def seen():
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=ROOT,
    )
    result = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["data_parallel", "model_parallel"])
def test_masks_train_and_prune_the_same_on_two_devices(seen, name):
    assert seen["devices"] == 2
    run = seen[name]
    assert run["prune_identical"] and run["set_identical"]  # bit-identical masks
    assert run["counts"] == seen["reference_counts"]
    assert run["zero_after_fit"] and run["masks_kept"]
    assert all(0 < loss < 10 for loss in run["loss"])
    assert run["gradual_density"] == pytest.approx(0.5, abs=0.01)
    assert run["zero_after_gradual"]
    assert run["imp_rounds"] == [0, 1]
    assert run["imp_remaining"] == pytest.approx(0.8, abs=0.01)


def test_model_parallel_shards_the_kernel_and_its_mask_alike(seen):
    sharded = [None, "model"]
    assert seen["model_parallel"]["shardings"] == [sharded, sharded]
    assert seen["model_parallel"]["mask_sharding_after"] == sharded
    replicated = [None, None]
    assert seen["data_parallel"]["shardings"] == [replicated, replicated]
