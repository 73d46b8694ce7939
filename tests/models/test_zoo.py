"""Every model family of the zoo: shapes, descriptions, scopes, options, training."""

import keras
import numpy as np
import pytest

from keras_lottery import models, pruning
from keras_lottery.layers import MaskedDense, MaskedDepthwiseConv2D, is_masked

pytestmark = pytest.mark.backend_neutral

# (name, options, small input shape, classes): every name the zoo registers. The
# classes are the ones of the published parameter counts; parameter counts do not
# depend on the input size (global pooling), so ImageNet models are built at 64x64.
SMALL = [
    ("cifar_resnet_20", {}, (32, 32, 3), 10),
    ("cifar_resnet_32", {}, (32, 32, 3), 10),
    ("cifar_resnet_44", {}, (32, 32, 3), 10),
    ("cifar_resnet_56", {}, (32, 32, 3), 10),
    ("cifar_resnet_110", {}, (32, 32, 3), 10),
    ("cifar_resnet", {"depth": 8, "width": 4}, (32, 32, 3), 7),
    ("resnet18", {}, (64, 64, 3), 1000),
    ("resnet26", {}, (64, 64, 3), 1000),
    ("resnet34", {}, (64, 64, 3), 1000),
    ("resnet50", {}, (64, 64, 3), 1000),
    (
        "resnet",
        {"blocks": (1, 1, 1, 1), "block": "bottleneck", "width": 8},
        (32, 32, 3),
        7,
    ),
    ("vgg11", {}, (32, 32, 3), 10),
    ("vgg13", {}, (32, 32, 3), 10),
    ("vgg16", {}, (32, 32, 3), 10),
    ("vgg19", {}, (32, 32, 3), 10),
    ("vgg", {"depth": 11}, (16, 16, 1), 7),
    ("mobilenet_v1", {}, (32, 32, 3), 10),
    ("mobilenet_v1", {"stem": "imagenet"}, (64, 64, 3), 1000),
    ("mobilenet_v2", {}, (64, 64, 3), 1000),
    ("mobilenet_v2", {"alpha": 0.35, "stem": "cifar"}, (32, 32, 3), 7),
]
IDS = [
    f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}".rstrip("-")
    for n, o, _, _ in SMALL
]
ZOO_NAMES = {case[0] for case in SMALL}
_CACHE = {}

# On JAX, building costs ~0.1 s per new weight shape (each initializer call is
# compiled), so the JAX pass checks one configuration of each builder kind; the
# others go through the same code with other sizes.
ON_EVERY_BACKEND = {0, 5, 6, 10, 11, 15, 16, 19}
_tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="same builder code as a configuration checked on every backend",
)


def _marks(index):
    return () if index in ON_EVERY_BACKEND else (_tensorflow_only,)


def _cases(indices):
    """pytest params ``(name, options, shape, classes)`` of SMALL[indices]."""
    return [pytest.param(*SMALL[i], id=IDS[i], marks=_marks(i)) for i in indices]


def _indices(indices):
    """pytest params ``index`` into SMALL."""
    return [pytest.param(i, id=IDS[i], marks=_marks(i)) for i in indices]


def _cached(name, options, shape, classes):
    """Builds once per module: these tests only read the models."""
    key = (name, repr(options), shape, classes)
    if key not in _CACHE:
        _CACHE[key] = _build(name, options, shape, classes)
    return _CACHE[key]


def _build(name, options, shape, num_classes=7):
    return models.get(name, num_classes=num_classes, input_shape=shape, **options)


def _masked(model):
    return [layer.name for layer in model.layers if is_masked(layer)]


def test_every_zoo_name_is_registered_and_tested():
    zoo_prefixes = ("cifar_resnet", "resnet", "vgg", "mobilenet")
    registered = {n for n in models.names() if n.startswith(zoo_prefixes)}
    assert registered == ZOO_NAMES


@pytest.mark.parametrize("name,options,shape,classes", _cases(range(len(SMALL))))
def test_builds_with_described_topology_and_scopes(name, options, shape, classes):
    model = _cached(name, options, shape, classes)
    arch = models.describe(model)
    assert model.output_shape == (None, classes)
    assert model.input_shape == (None,) + shape

    # Every named layer exists; stem/blocks/head are disjoint and cover every
    # layer with weights.
    listed = list(arch.stem) + list(arch.head)
    for stage in arch.stages:
        assert stage.blocks, stage.name
        for block in stage.blocks:
            assert block.name.startswith(stage.name + "_")
            assert all(n.startswith(block.name + "_") for n in block.layers)
            listed += block.layers
    assert len(listed) == len(set(listed))
    by_name = {layer.name: layer for layer in model.layers}
    assert set(listed) <= set(by_name)
    weighted = {n for n, layer in by_name.items() if layer.weights}
    assert weighted == set(listed)
    masked = _masked(model)
    assert set(masked) <= set(listed)

    # Scopes: "paper" and "all" exist, name masked layers only, in layer order.
    assert {"paper", "all"} <= set(arch.scopes)
    assert list(arch.scopes["all"]) == masked
    for scope, layers in arch.scopes.items():
        assert layers, scope
        assert set(layers) <= set(masked), scope
        assert list(layers) == [n for n in masked if n in set(layers)], scope
        assert models.pruning_scope(model, scope) == list(layers)

    # A block is a "downsample" block exactly when its shapes change.
    for stage in arch.stages:
        for block in stage.blocks:
            first = by_name[block.layers[0]]
            last_out = _block_output_shape(model, block)
            assert block.downsample == (first.input.shape != last_out), block.name


def _block_output_shape(model, block):
    # The last layer of the block's main path is the one before "_add"/"_out",
    # or for plain blocks the block's last BN.
    for suffix in ("_out", "_add", "_relu", "_pw_relu", "_project_bn"):
        try:
            return model.get_layer(block.name + suffix).output.shape
        except ValueError:
            continue
    raise AssertionError(f"no output layer found for {block.name}")


# One configuration per builder kind (fixed-name and generic) of every family.
REBUILD = [0, 5, 6, 10, 11, 15, 16, 17, 19]


@pytest.mark.parametrize("index", _indices(REBUILD))
def test_options_rebuild_the_same_network(index):
    name, options, shape, classes = SMALL[index]
    model = _cached(name, options, shape, classes)
    arch = models.describe(model)
    assert {k: arch.options[k] for k in options} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
    }
    again = models.get(name, num_classes=classes, input_shape=shape, **arch.options)
    assert [layer.name for layer in again.layers] == [lyr.name for lyr in model.layers]
    assert models.count_parameters(again) == models.count_parameters(model)
    assert models.describe(again) == arch
    assert arch.to_dict()["options"] == arch.options


def test_kernels_are_he_normal_with_pytorch_fan_in():
    model = models.get("mobilenet_v1", input_shape=(32, 32, 3), alpha=1.0)
    for name, fan_in in [
        ("stage4_block2_pw_conv", 512),  # 1x1 conv: in channels
        ("stage4_block2_dw_conv", 9),  # depthwise 3x3: kh * kw
        ("output", 1024),
    ]:
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).raw_kernel)
        assert kernel.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.1), name
        assert abs(kernel.mean()) < 0.1 * np.sqrt(2 / fan_in)
    bias = keras.ops.convert_to_numpy(model.get_layer("output").bias)
    assert not bias.any()


def test_distinct_layers_get_distinct_kernels():
    # One unseeded Keras initializer instance reused across layers would give
    # same-shaped layers identical kernels.
    model = models.get("cifar_resnet_20")
    a = keras.ops.convert_to_numpy(model.get_layer("stage1_block1_conv1").raw_kernel)
    b = keras.ops.convert_to_numpy(model.get_layer("stage1_block2_conv1").raw_kernel)
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "bn_init,low,high", [("uniform", 0.0, 1.0), ("ones", 1.0, 1.0)]
)
def test_batchnorm_init_and_hyperparameters(bn_init, low, high):
    model = models.get("cifar_resnet_20", bn_init=bn_init)
    bn = model.get_layer("stage2_block1_bn1")
    gamma = keras.ops.convert_to_numpy(bn.gamma)
    assert gamma.min() >= low and gamma.max() <= high
    assert bn_init == "ones" or gamma.std() > 0.1
    assert not keras.ops.convert_to_numpy(bn.beta).any()
    assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)


def test_builds_are_reproducible_under_a_seed():
    keras.utils.set_random_seed(7)
    a = models.get("vgg11")
    keras.utils.set_random_seed(7)
    b = models.get("vgg11")
    for va, vb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(va), keras.ops.convert_to_numpy(vb)
        )


# One training step per family, at tiny inputs, with the configurations (and so
# the weight shapes) of SMALL. TensorFlow runs it eagerly: tracing costs 5-30 s
# per model on 2 CPU cores, while an eager step takes about a second (the traced
# path is exercised by tests/data/test_pipelines.py). On JAX an eager step dispatches
# and compiles op by op, which is slower than compiling the step once.
TRAIN = [0, 10, 11, 16, 19]  # cifar_resnet_20, resnet (bottleneck), vgg11, MobileNets


@pytest.mark.parametrize("index", _indices(TRAIN))
def test_one_training_step_changes_weights_and_keeps_pruned_zeros(index):
    name, options, shape, classes = SMALL[index]
    model = _build(name, options, shape, classes)
    # Prune half of one conv and of the classifier: the step must keep them zero.
    conv = models.pruning_scope(model, "all")[1]
    masks = {}
    for layer_name in (conv, "output"):
        kernel = model.get_layer(layer_name).raw_kernel
        size = int(np.prod(kernel.shape))
        masks[layer_name] = np.arange(size).reshape(kernel.shape) % 2 == 0
    pruning.set_masks(model, masks)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        run_eagerly=keras.backend.backend() == "tensorflow",
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4,) + shape).astype("float32")
    y = np.arange(4) % classes
    before = keras.ops.convert_to_numpy(model.get_layer("output").raw_kernel).copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = keras.ops.convert_to_numpy(model.get_layer("output").raw_kernel)
    assert not np.allclose(before, after)
    for layer_name, mask in masks.items():
        kernel = keras.ops.convert_to_numpy(model.get_layer(layer_name).raw_kernel)
        assert not kernel[~mask].any(), layer_name


def test_depthwise_and_dense_layers_are_masked_twins():
    model = _cached(*SMALL[19])  # mobilenet_v2, alpha 0.35 (built on every backend)
    assert isinstance(model.get_layer("stage2_block1_dw_conv"), MaskedDepthwiseConv2D)
    assert isinstance(model.get_layer("output"), MaskedDense)


# ---------------------------------------------------------------------------
# Parameter counts
#
# Published counts follow PyTorch's convention: trainable parameters (conv and
# dense kernels and biases, BN gamma and beta), no BN running statistics, and so
# does ``count_parameters`` (it leaves out masks and BN moving mean/variance).


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _cifar_resnet_exact(depth, classes=10, projection=True):
    """PyTorch-convention count of the CIFAR ResNet, from its definition."""
    n = (depth - 2) // 6
    count = 27 * 16 + 2 * 16  # stem conv + BN
    for w_in, w in ((16, 16), (16, 32), (32, 64)):
        count += 9 * w_in * w + 9 * w * w + 4 * w  # first block: 2 convs, 2 BNs
        count += (n - 1) * (2 * 9 * w * w + 4 * w)
        if projection and w_in != w:
            count += w_in * w + 2 * w  # 1x1 shortcut conv + BN
    return count + 64 * classes + classes


def _vgg_exact(depth, classes=10):
    from keras_lottery.models.vgg import PLANS

    count, w_in = 0, 3
    for widths in PLANS[depth]:
        for w in widths:
            count += 9 * w_in * w + w + 2 * w  # conv kernel + bias, BN
            w_in = w
    return count + 512 * classes + classes


# (case index in SMALL, exact PyTorch-convention count, source)
EXACT = [
    (0, _cifar_resnet_exact(20), "open_lth ResNet-20 (272,474; LMC paper: 272K)"),
    (1, _cifar_resnet_exact(32), "ResNet-32 with 1x1 projection shortcuts"),
    (2, _cifar_resnet_exact(44), "ResNet-44 with 1x1 projection shortcuts"),
    (3, _cifar_resnet_exact(56), "ResNet-56 with 1x1 projection shortcuts"),
    (4, _cifar_resnet_exact(110), "ResNet-110 with 1x1 projection shortcuts"),
    (6, 11_689_512, "torchvision resnet18"),
    (8, 21_797_672, "torchvision resnet34"),
    (9, 25_557_032, "torchvision resnet50"),
    (11, _vgg_exact(11), "open_lth vgg_11"),
    (12, _vgg_exact(13), "open_lth vgg_13"),
    (13, _vgg_exact(16), "open_lth vgg_16"),
    (14, _vgg_exact(19), "open_lth vgg_19"),
    (17, 4_231_976, "keras.applications.MobileNet (alpha 1, 224, 1000 classes)"),
    (18, 3_504_872, "torchvision mobilenet_v2"),
]


@pytest.mark.parametrize(
    "index,exact,source",
    [pytest.param(*case, id=IDS[case[0]], marks=_marks(case[0])) for case in EXACT],
)
def test_parameter_counts_match_references(index, exact, source):
    model = _cached(*SMALL[index])
    assert _trainable(model) == exact, source
    assert models.count_parameters(model) == exact, source  # no masks, no BN stats


PUBLISHED = [
    (0, 270_000, 10_000),  # He et al. 2016, Table 6: 0.27M (LMC paper: 272K)
    (13, 14_700_000, 100_000),  # LMC paper: VGG-16 14.7M
    (17, 4_200_000, 100_000),  # Howard et al. 2017, Table 8: 4.2M
    (18, 3_500_000, 100_000),  # torchvision: 3.5M (the paper's table: 3.4M)
]


@pytest.mark.parametrize(
    "index,published,unit",
    [pytest.param(*c, id=IDS[c[0]], marks=_marks(c[0])) for c in PUBLISHED],
)
def test_rounded_published_counts(index, published, unit):
    # A figure printed as 0.27M stands for [0.265M, 0.275M).
    assert abs(_trainable(_cached(*SMALL[index])) - published) <= unit / 2


def test_he_et_al_counts_are_those_of_option_a_shortcuts():
    # He et al.'s CIFAR ResNets (Table 6) use parameter-free shortcuts; ours add
    # two 1x1 projections (2,752 parameters), as open_lth does.
    for depth, published in [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6)]:
        exact = _cifar_resnet_exact(depth, projection=False)
        assert round(exact / 1e4) == round(published / 1e4)
        assert _cifar_resnet_exact(depth) - exact == 2752
    assert round(_cifar_resnet_exact(110, projection=False) / 1e5) == 17


@pytest.mark.parametrize("name", ["lenet_300_100", "cifar_resnet_20"])
def test_classifier_activation_default_softmax_or_logits(name):
    shape = (8, 8, 1) if name.startswith("lenet") else (16, 16, 3)
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype("float32")
    probs = models.get(name, num_classes=4, input_shape=shape)
    np.testing.assert_allclose(probs.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5)
    logits = models.get(
        name, num_classes=4, input_shape=shape, classifier_activation=None
    )
    assert not np.allclose(logits.predict(x, verbose=0).sum(axis=1), 1.0)
    assert models.describe(logits).options["classifier_activation"] is None
