"""Family-specific topology, scopes and argument checks of the model zoo."""

import pytest

from keras_lottery import models

# Topology and argument checks: Python-level, the same on every backend (the
# training step of every family runs on JAX too, in test_zoo.py).


def _spatial(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:3])


# ---------------------------------------------------------------------------
# CIFAR ResNets


def test_cifar_resnet_layout_scopes_and_downsampling():
    model = models.get("cifar_resnet", depth=14, width=4)  # n = 2
    arch = models.describe(model)
    assert arch.stem == ("stem_conv", "stem_bn") and arch.head == ("output",)
    assert [len(s.blocks) for s in arch.stages] == [2, 2, 2]
    flags = {b.name: b.downsample for s in arch.stages for b in s.blocks}
    assert [n for n, f in flags.items() if f] == ["stage2_block1", "stage3_block1"]
    assert arch.stages[1].blocks[0].layers == (
        "stage2_block1_conv1",
        "stage2_block1_bn1",
        "stage2_block1_conv2",
        "stage2_block1_bn2",
        "stage2_block1_shortcut_conv",
        "stage2_block1_shortcut_bn",
    )
    widths = [model.get_layer(f"stage{s}_block2_conv2").filters for s in (1, 2, 3)]
    assert widths == [4, 8, 16]
    assert _spatial(model, "stage3_block2_out") == (8, 8)
    shortcuts = ["stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"]
    paper = models.pruning_scope(model, "paper")
    assert paper[0] == "stem_conv" and paper[-1] == "output"
    assert set(shortcuts) <= set(paper) and len(paper) == 1 + 12 + 2 + 1
    cs = models.pruning_scope(model, "cs")
    assert cs[0] == "stem_conv" and len(cs) == 13
    assert not set(cs) & set(shortcuts + ["output"])
    assert models.pruning_scope(model, "convs") == paper[:-1]
    assert all(model.get_layer(n).kernel_size == (3, 3) for n in cs)


@pytest.mark.parametrize("depth", [0, 2, 7, 9, 21, 24, 3.0, "20", True, None])
def test_cifar_resnet_invalid_depth_lists_valid_depths(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*20, 32, 44, 56"):
        models.get("cifar_resnet", depth=depth)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"width": 0}, "width"),
        ({"bn_init": "normal"}, r"bn_init.*'uniform', 'ones'"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"input_shape": (32, -1, 3)}, "input_shape"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_cifar_resnet_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.get("cifar_resnet_20", **kwargs)


def test_unknown_model_name_lists_registered_names():
    with pytest.raises(ValueError, match=r"cifar_resnet_20.*Registered.*vgg16"):
        models.get("cifar_resnet20")
    with pytest.raises(TypeError):
        models.get("cifar_resnet_20", depth=56)  # fixed-depth builders take no depth


# ---------------------------------------------------------------------------
# ImageNet ResNets


def test_resnet_geometry_matches_pytorch():
    model = models.get(
        "resnet", blocks=(1, 1, 1, 1), width=8, input_shape=(224, 224, 3)
    )
    assert _spatial(model, "stem_conv") == (112, 112)
    assert _spatial(model, "stem_pool") == (56, 56)
    assert [_spatial(model, f"stage{s}_block1_out") for s in (1, 2, 3, 4)] == [
        (56, 56),
        (28, 28),
        (14, 14),
        (7, 7),
    ]
    # PyTorch padding: a stride-2 conv/pool is preceded by explicit zero padding.
    assert model.get_layer("stem_conv_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("stem_pool_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("stage2_block1_conv1").padding == "valid"


def test_resnet_bottleneck_blocks_and_flags():
    model = models.get(
        "resnet",
        blocks=(2, 1, 1, 1),
        block="bottleneck",
        width=8,
        input_shape=(64, 64, 3),
    )
    arch = models.describe(model)
    flags = [(b.name, b.downsample) for s in arch.stages for b in s.blocks]
    # Stage 1's first block widens 8 -> 32 channels (expansion 4): projection.
    assert flags == [
        ("stage1_block1", True),
        ("stage1_block2", False),
        ("stage2_block1", True),
        ("stage3_block1", True),
        ("stage4_block1", True),
    ]
    assert model.get_layer("stage1_block2_conv3").filters == 32
    assert model.get_layer("stage2_block1_conv2").strides == (2, 2)  # v1.5
    assert model.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert models.describe(model).name == "resnet17_w8"
    assert models.pruning_scope(model, "paper")[-1] == "output"
    assert "output" not in models.pruning_scope(model, "convs")


@pytest.mark.slow  # 35 s in the suite: two ImageNet ResNets built
def test_resnet18_and_26_block_counts():
    arch = models.describe(models.get("resnet18", width=8, input_shape=(32, 32, 3)))
    assert [len(s.blocks) for s in arch.stages] == [2, 2, 2, 2]
    assert not arch.stages[0].blocks[0].downsample  # 8 -> 8 channels, stride 1
    arch = models.describe(models.get("resnet26", width=8, input_shape=(32, 32, 3)))
    assert [len(s.blocks) for s in arch.stages] == [2, 3, 4, 3]
    assert arch.name == "resnet26_w8" and arch.options == {
        "width": 8,
        "bn_init": "uniform",
        "classifier_activation": "softmax",
    }


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"blocks": (2, 2, 2)}, r"four positive ints.*\(2, 2, 2, 2\)"),
        ({"blocks": (2, 0, 2, 2)}, "four positive ints"),
        ({"blocks": 18}, "four positive ints"),
        ({"block": "wide"}, r"block must be one of \['basic', 'bottleneck'\]"),
        ({"width": -1}, "width"),
    ],
)
def test_resnet_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.get("resnet", input_shape=(32, 32, 3), **kwargs)


# ---------------------------------------------------------------------------
# VGG


def test_vgg16_stages_blocks_and_scopes():
    model = models.get("vgg16")
    arch = models.describe(model)
    assert arch.stem == () and arch.head == ("output",)
    assert [len(s.blocks) for s in arch.stages] == [2, 2, 3, 3, 3]
    assert [b.downsample for b in arch.stages[0].blocks] == [True, False]
    firsts = [s.blocks[0].downsample for s in arch.stages]
    assert firsts == [True, True, True, True, False]  # stage 5 keeps 512 channels
    assert all(not b.downsample for s in arch.stages for b in s.blocks[1:])
    assert arch.stages[2].blocks[0].layers == ("stage3_block1_conv", "stage3_block1_bn")
    assert _spatial(model, "stage4_pool") == (2, 2)
    assert model.get_layer("stage5_block3_conv").use_bias
    paper = models.pruning_scope(model, "paper")
    assert len(paper) == 13 and "output" not in paper
    assert models.pruning_scope(model, "all") == paper + ["output"]


@pytest.mark.parametrize("depth", [8, 12, 18, "16", None])
def test_vgg_invalid_depth_lists_valid_depths(depth):
    with pytest.raises(ValueError, match=r"\[11, 13, 16, 19\]"):
        models.get("vgg", depth=depth)


def test_vgg_input_too_small_is_an_error():
    with pytest.raises(ValueError, match=">= 16"):
        models.get("vgg11", input_shape=(8, 8, 3))


# ---------------------------------------------------------------------------
# MobileNets


def test_mobilenet_v1_stems_and_stages():
    cifar = models.get("mobilenet_v1", alpha=0.25)
    arch = models.describe(cifar)
    assert cifar.input_shape == (None, 32, 32, 3)
    assert [len(s.blocks) for s in arch.stages] == [1, 2, 2, 6, 2]
    assert [b.downsample for b in arch.stages[3].blocks] == [True] + [False] * 5
    assert _spatial(cifar, "stem_conv") == (32, 32)
    assert _spatial(cifar, "stage5_block2_pw_relu") == (2, 2)
    assert cifar.get_layer("stage4_block2_pw_conv").filters == 128  # int(512 * 0.25)
    imagenet = models.get("mobilenet_v1", alpha=0.25, stem="imagenet")
    assert imagenet.input_shape == (None, 224, 224, 3)
    assert _spatial(imagenet, "stem_conv") == (112, 112)
    assert _spatial(imagenet, "stage5_block2_pw_relu") == (7, 7)
    scopes = arch.scopes
    assert len(scopes["convs"]) == 1 + 2 * 13
    assert "stem_conv" not in scopes["pointwise"]
    assert not any("_dw_" in n for n in scopes["pointwise"])
    assert len(scopes["pointwise"]) == 13 + 1 and scopes["paper"] == scopes["all"]


def test_mobilenet_v2_blocks_residuals_and_channels():
    # Width 0.35 keeps this cheap on JAX; the full-width network is checked
    # against torchvision's parameter count in test_zoo.py.
    model = models.get("mobilenet_v2", alpha=0.35, input_shape=(224, 224, 3))
    arch = models.describe(model)
    assert [len(s.blocks) for s in arch.stages] == [1, 2, 3, 4, 3, 3, 1]
    residual = [not b.downsample for s in arch.stages for b in s.blocks]
    assert sum(residual) == 10
    assert "stage1_block1_expand_conv" not in arch.stages[0].blocks[0].layers
    # make_divisible(c * 0.35): 32 -> 16, 16 -> 8, 24 -> 8, 320 -> 112; head 1280.
    assert model.get_layer("stem_conv").filters == 16
    assert model.get_layer("stage1_block1_project_conv").filters == 8
    assert model.get_layer("stage2_block1_expand_conv").filters == 8 * 6
    assert model.get_layer("stage7_block1_project_conv").filters == 112
    assert model.get_layer("head_conv").filters == 1280
    assert arch.head == ("head_conv", "head_bn", "output")
    assert _spatial(model, "stem_conv") == (112, 112)
    assert _spatial(model, "head_relu") == (7, 7)
    assert "head_conv" in models.pruning_scope(model, "pointwise")
    cifar = models.get("mobilenet_v2", alpha=0.35, stem="cifar")
    assert cifar.input_shape == (None, 32, 32, 3)
    assert _spatial(cifar, "stem_conv") == (32, 32)
    assert _spatial(cifar, "stage2_block1_dw_conv") == (32, 32)  # stride 1 too
    assert _spatial(cifar, "head_relu") == (4, 4)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("mobilenet_v1", {"alpha": 0}, "alpha"),
        ("mobilenet_v1", {"alpha": "1.0"}, "alpha"),
        ("mobilenet_v1", {"stem": "tiny"}, r"\['cifar', 'imagenet'\]"),
        ("mobilenet_v2", {"alpha": -1.0}, "alpha"),
        ("mobilenet_v2", {"stem": None}, r"\['cifar', 'imagenet'\]"),
        ("mobilenet_v2", {"bn_init": "zeros"}, "bn_init"),
    ],
)
def test_mobilenet_invalid_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.get(name, **kwargs)
