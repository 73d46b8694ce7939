import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.layers import MaskedDense
from tests.helpers import mlp, small_convnet

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _set_kernel(model, name, values):
    model.get_layer(name).raw_kernel.assign(np.asarray(values, dtype="float32"))


def _kernels(model):
    return {
        lyr.name: keras.ops.convert_to_numpy(lyr.raw_kernel).copy()
        for lyr in pruning.masked_layers(model)
    }


def test_get_and_set_masks_by_name(rng):
    model = mlp()
    masks = pruning.get_masks(model)
    assert list(masks) == ["fc1", "fc2", "out"]
    assert all(m.dtype == bool and m.all() for m in masks.values())
    new = rng.random((8, 16)) > 0.5
    pruning.set_masks(model, {"fc1": new.astype("int32")})
    np.testing.assert_array_equal(pruning.get_masks(model)["fc1"], new)
    assert np.all(_kernels(model)["fc1"][~new] == 0)


def test_sparsity_report_counts_and_table():
    model = mlp()
    mask = np.zeros((16, 3), dtype=bool)
    mask[:4] = True
    pruning.set_masks(model, {"out": mask})
    report = pruning.sparsity_report(model)
    assert [lyr.name for lyr in report.layers] == ["fc1", "fc2", "out"]
    assert [lyr.total for lyr in report.layers] == [128, 256, 48]
    assert report.layers[2].remaining == 12
    assert report.layers[2].fraction_remaining == pytest.approx(0.25)
    assert report.total == 432 and report.remaining == 128 + 256 + 12
    assert report.sparsity == pytest.approx(36 / 432)
    table = str(report)
    assert "TOTAL" in table and "25.00%" in table and "out" in table
    assert report.to_dict()["layers"][2]["remaining"] == 12
    assert report.layers_remaining == {"fc1": 1.0, "fc2": 1.0, "out": 0.25}


def test_layerwise_prunes_exact_count_of_remaining_rounding_down():
    model = mlp(inputs=5, hidden=4, outputs=3)  # fc1: 20, fc2: 16, out: 12
    masks = pruning.prune_magnitude(model, 0.3, scope="layerwise")
    assert {n: int(m.sum()) for n, m in masks.items()} == {
        "fc1": 20 - 6,
        "fc2": 16 - 4,
        "out": 12 - 3,
    }  # floor(0.3 * n)
    masks = pruning.prune_magnitude(model, 0.3, scope="layerwise")
    assert {n: int(m.sum()) for n, m in masks.items()} == {
        "fc1": 14 - 4,
        "fc2": 12 - 3,
        "out": 9 - 2,
    }


def test_global_uses_one_threshold_across_layers():
    model = mlp(inputs=2, hidden=2, outputs=2)  # fc1: 4, fc2: 4, out: 4
    _set_kernel(model, "fc1", [[1, 2], [3, 4]])
    _set_kernel(model, "fc2", [[10, 20], [30, 40]])
    _set_kernel(model, "out", [[-0.5, 5], [6, -7]])
    masks = pruning.prune_magnitude(model, 0.5)  # 6 of 12, smallest |w|
    assert masks["fc1"].sum() == 0
    np.testing.assert_array_equal(masks["out"], [[False, False], [True, True]])
    assert masks["fc2"].all()


def test_ties_are_broken_by_position_deterministically():
    model = mlp(inputs=2, hidden=2, outputs=2)
    for name in ("fc1", "fc2", "out"):
        _set_kernel(model, name, np.ones((2, 2)))
    masks = pruning.magnitude_masks(model, 0.5)
    # 6 of 12 equal weights: the first six in layer order, row-major.
    assert masks["fc1"].sum() == 0 and masks["fc2"].sum() == 2 and masks["out"].all()
    np.testing.assert_array_equal(masks["fc2"], [[False, False], [True, True]])


def test_overrides_and_exclusions():
    model = mlp()
    masks = pruning.prune_magnitude(
        model, 0.2, scope="global", exclude=["fc1"], layer_fractions={"out": 0.1}
    )
    assert "fc1" not in masks and pruning.get_masks(model)["fc1"].all()
    assert masks["out"].sum() == 48 - 4  # floor(0.1 * 48), pruned on its own
    assert masks["fc2"].sum() == 256 - 51


def test_masks_only_shrink(rng):
    model = mlp()
    for _ in range(4):
        before = pruning.get_masks(model)
        model.get_layer("fc2").raw_kernel.assign(rng.normal(size=(16, 16)))
        after = pruning.prune_magnitude(model, 0.25, scope="global")
        for name, mask in after.items():
            assert not np.any(mask & ~before[name])


def test_pruned_entries_never_re_enter_through_stale_values():
    model = mlp(inputs=2, hidden=2, outputs=2)
    pruning.set_masks(model, {"fc1": np.array([[0, 1], [1, 1]])})
    # Even if a stale large value sits at a pruned position, it is not "kept".
    model.get_layer("fc1").raw_kernel.assign([[100.0, 1.0], [2.0, 3.0]])
    masks = pruning.magnitude_masks(model, 0.34, scope="layerwise")
    np.testing.assert_array_equal(masks["fc1"], [[False, False], [True, True]])


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_density_target_is_exact_after_many_rounds(scope):
    model = mlp(inputs=30, hidden=40, outputs=10)
    totals = {lyr.name: lyr.total for lyr in pruning.sparsity_report(model).layers}
    rng = np.random.default_rng(0)
    for n in range(1, 9):
        for layer in pruning.masked_layers(model):  # "retraining" changes values
            values = rng.normal(size=tuple(layer.raw_kernel.shape))
            layer.raw_kernel.assign(values * layer.get_mask())
        pruning.prune_to_density(
            model, 0.8**n, scope=scope, layer_densities={"out": 0.9**n}
        )
        layers = pruning.sparsity_report(model).layers
        report = {lyr.name: lyr.remaining for lyr in layers}
        assert abs(report["out"] - totals["out"] * 0.9**n) <= 0.5
        if scope == "layerwise":
            for name in ("fc1", "fc2"):
                assert abs(report[name] - totals[name] * 0.8**n) <= 0.5
        else:
            pool = totals["fc1"] + totals["fc2"]
            assert abs(report["fc1"] + report["fc2"] - pool * 0.8**n) <= 0.5


def test_biases_and_batchnorm_are_never_pruned():
    model = small_convnet()
    others = {
        v.path: keras.ops.convert_to_numpy(v).copy()
        for v in model.weights
        if not v.path.endswith(("kernel", "mask"))
    }
    assert any("bn1" in p for p in others) and any("bias" in p for p in others)
    pruning.prune_magnitude(model, 0.9)
    for v in model.weights:
        if v.path in others:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), others[v.path])


def test_random_masks_keep_per_layer_counts_and_vary_with_seed():
    model = mlp()
    masks = pruning.prune_magnitude(model, 0.6, scope="layerwise")
    a = pruning.random_masks_like(masks, seed=1)
    b = pruning.random_masks_like(masks, seed=1)
    c = pruning.random_masks_like(masks, seed=2)
    for name in masks:
        assert a[name].sum() == masks[name].sum() and a[name].shape == masks[name].shape
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[n], c[n]) for n in masks)
    assert any(not np.array_equal(a[n], masks[n]) for n in masks)
    pruning.prune_random(model, seed=3)
    counts = {n: m.sum() for n, m in pruning.get_masks(model).items()}
    assert counts == {n: m.sum() for n, m in masks.items()}


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: pruning.prune_magnitude(m, 1.0), r"\[0, 1\)"),
        (lambda m: pruning.prune_magnitude(m, -0.1), r"\[0, 1\)"),
        (lambda m: pruning.prune_magnitude(m, "0.2"), r"\[0, 1\)"),
        (lambda m: pruning.prune_magnitude(m, 0.2, scope="per-layer"), "global"),
        (lambda m: pruning.prune_magnitude(m, 0.2, layers=["nope"]), "nope"),
        (lambda m: pruning.prune_magnitude(m, 0.2, exclude=["nope"]), "nope"),
        (
            lambda m: pruning.prune_magnitude(m, 0.2, layer_fractions={"out": 1.5}),
            "out",
        ),
        (
            lambda m: pruning.prune_magnitude(m, 0.2, exclude=["fc1", "fc2", "out"]),
            "No layer left",
        ),
        (
            lambda m: pruning.set_masks(m, {"fc1": np.ones((8, 16)), "zz": np.ones(1)}),
            "zz",
        ),
        (
            lambda m: pruning.set_masks(
                m, {"fc1": np.ones((8, 16)), "out": np.ones((3,))}
            ),
            "'out'.*shape",
        ),
        (lambda m: pruning.set_masks(m, {"fc2": np.full((16, 16), 0.5)}), "'fc2'"),
    ],
)
def test_bad_input_raises_value_error_and_leaves_model_unchanged(call, match):
    model = mlp()
    before = _kernels(model)
    with pytest.raises(ValueError, match=match):
        call(model)
    assert all(m.all() for m in pruning.get_masks(model).values())
    for name, kernel in _kernels(model).items():
        np.testing.assert_array_equal(kernel, before[name])


def test_model_without_prunable_layer_is_an_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no prunable layer.*prunable"):
        pruning.prune_magnitude(model, 0.2)
    with pytest.raises(ValueError, match="no prunable layer"):
        pruning.sparsity_report(model)


def test_duplicate_names_in_nested_models_are_an_error():
    inner = keras.Sequential([keras.Input((3,)), MaskedDense(3, name="same")])
    outer = keras.Sequential([keras.Input((3,)), inner, MaskedDense(2, name="same")])
    with pytest.raises(ValueError, match="unique names"):
        pruning.get_masks(outer)


# --------------------------------------------------------------------------- errors


def test_a_string_of_layers_is_one_layer_name():
    model = mlp()
    masks = pruning.prune_magnitude(model, 0.5, layers="out", scope="layerwise")
    assert list(masks) == ["out"]
    masks = pruning.prune_magnitude(model, 0.5, exclude="out")
    assert "out" not in masks
    with pytest.raises(TypeError, match="`layers` must be a layer name or a list"):
        pruning.prune_magnitude(model, 0.5, layers=3)
    with pytest.raises(
        ValueError, match=r"Unknown masked layer name\(s\) \['output'\]"
    ):
        pruning.prune_to_density(model, 0.5, layers="output")


def test_random_masks_like_rejects_non_binary_float_masks():
    zero_one = {"fc1": np.array([[1.0, 0.0, 1.0, 1.0]])}
    drawn = pruning.random_masks_like(zero_one, seed=0)["fc1"]
    assert drawn.dtype == bool and drawn.sum() == 3
    with pytest.raises(ValueError, match="'fc1' must be boolean or hold only 0 and 1"):
        pruning.random_masks_like({"fc1": np.array([[0.5, 0.2, 0.9]])}, seed=0)


def test_pruning_a_layer_to_nothing_warns():
    model = mlp()
    with pytest.warns(UserWarning, match=r"leaves no weight in layer\(s\) \['out'\]"):
        pruning.prune_to_density(model, 0.01, scope="layerwise")


def test_sparsity_report_headings_are_distinct():
    header = str(pruning.sparsity_report(mlp())).splitlines()[0].split()
    assert header == [
        "layer",
        "type",
        "shape",
        "weights",
        "remaining",
        "%",
        "remaining",
    ]


@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_non_finite_kernels_are_refused_not_left_unpruned(scope):
    from keras_lottery.errors import DivergenceError

    model = mlp()
    kernel = _kernels(model)["fc2"]
    kernel[0, 0] = np.nan
    _set_kernel(model, "fc2", kernel)
    before = pruning.get_masks(model)
    with pytest.raises(
        DivergenceError, match="Cannot prune layer 'fc2' by magnitude: its kernel"
    ):
        pruning.prune_magnitude(model, 0.5, scope=scope)
    for name, mask in pruning.get_masks(model).items():
        np.testing.assert_array_equal(mask, before[name])
    # A NaN in a pruned position is not looked at.
    pruning.set_masks(model, {"fc2": kernel == kernel})
    pruning.prune_magnitude(model, 0.5, scope=scope)
