"""Elastic tickets (keras_lottery.elastic): block maps, transfer, wiring, errors."""

import keras
import numpy as np
import pytest

from keras_lottery import controls, elastic, models, pruning
from keras_lottery.elastic import BlockMap, plan, transform
from keras_lottery.errors import ConfigError
from keras_lottery.models.registry import Architecture, Block, Stage
from keras_lottery.ticket import Ticket

pytestmark = pytest.mark.backend_neutral

# The issue's maps (the first author's experiment scripts).
CIFAR_STRETCH = {
    (20, 32): "1:1,2;2:3,4",
    (20, 44): "1:1,2,3;2:4,5,6",
    (20, 56): "1:1,2,3,4;2:5,6,7,8",
    (32, 44): "1:1,2;2:3,4;3:5;4:6",
    (32, 56): "1:1,2;2:3,4;3:5,6;4:7,8",
    (44, 56): "1:1,2;2:3,4;3:5;4:6;5:7;6:8",
}
CIFAR_KEEP = {
    (56, 32): (1, 3, 5, 7),
    (56, 20): (1, 5),
    (56, 44): (1, 2, 3, 4, 5, 7),
    (44, 32): (1, 2, 3, 5),
    (44, 20): (1, 4),
    (32, 20): (1, 3),
}
IMAGENET = {
    ("resnet18", "resnet26"): "0:0;1:1|0:0;1:1,2|0:0;1:1,2,3|0:0;1:1,2",
    ("resnet18", "resnet34"): "0:0;1:1,2|0:0;1:1,2,3|0:0;1:1,2,3,4,5|0:0;1:1,2",
    ("resnet26", "resnet34"): "0:0;1:1,2|0:0;1:1,2;2:3|0:0;1:1,2;2:3,4;3:5|0:0;1:1;2:2",
}
IMAGENET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet26": (2, 3, 4, 3)}
IMAGENET_BLOCKS["resnet34"] = (3, 4, 6, 3)
VGG = {
    ("vgg13", "vgg16"): "1:1,2",
    ("vgg13", "vgg19"): "1:1,2,3",
    ("vgg16", "vgg19"): "1:1,2;2:3",
}
VGG_BLOCKS = {"vgg13": (2,) * 5, "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def _keep_map(keep):
    return ";".join(f"{src}:{dst}" for dst, src in enumerate(keep, start=1))


def _vgg_map(text):
    return "|".join(["1:1", "1:1"] + [text] * 3)


def _synthetic(family, name, counts, roles):
    """An Architecture with ``counts`` blocks a stage (no model built)."""
    stages = tuple(
        Stage(
            f"stage{s}",
            tuple(
                Block(
                    f"stage{s}_block{b}",
                    tuple(f"stage{s}_block{b}_{r}" for r in roles),
                    downsample=b == 1,
                )
                for b in range(1, n + 1)
            ),
        )
        for s, n in enumerate(counts, start=1)
    )
    return Architecture(family, name, ("stem_conv",), stages, ("output",))


# ------------------------------------------------------------------------ maps


def _cifar(depth):
    n = (depth - 2) // 6
    roles = ("conv1", "bn1", "conv2", "bn2")
    return _synthetic("cifar_resnet", f"cifar_resnet_{depth}", (n,) * 3, roles)


@pytest.mark.parametrize("pair", list(CIFAR_STRETCH))
def test_cifar_stretch_maps_are_the_issues(pair):
    got = plan(_cifar(pair[0]), _cifar(pair[1]))
    assert got == BlockMap.parse(CIFAR_STRETCH[pair], stages=3)
    assert str(got) == "0:0;" + CIFAR_STRETCH[pair]


@pytest.mark.parametrize("pair", list(CIFAR_KEEP))
def test_cifar_squeeze_maps_keep_the_issues_blocks(pair):
    got = plan(_cifar(pair[0]), _cifar(pair[1]))
    assert got == BlockMap.parse(_keep_map(CIFAR_KEEP[pair]), stages=3)


@pytest.mark.parametrize("pair", list(IMAGENET))
def test_imagenet_resnet_maps_are_the_issues(pair):
    source, target = (
        _synthetic("resnet", n, IMAGENET_BLOCKS[n], ("conv1", "bn1")) for n in pair
    )
    assert plan(source, target) == BlockMap.parse(IMAGENET[pair])
    assert str(plan(source, target)) == IMAGENET[pair]
    # squeezing keeps the first blocks of each stage
    back = plan(target, source)
    assert back == BlockMap.from_dicts(
        [{b: (b,) for b in range(n)} for n in IMAGENET_BLOCKS[pair[0]]]
    )


@pytest.mark.parametrize("pair", list(VGG))
def test_vgg_maps_are_the_issues(pair):
    source, target = (_synthetic("vgg", n, VGG_BLOCKS[n], ("conv", "bn")) for n in pair)
    assert plan(source, target) == BlockMap.parse(_vgg_map(VGG[pair]))
    back = plan(target, source)
    assert back == BlockMap.from_dicts(
        [{b: (b,) for b in range(n)} for n in VGG_BLOCKS[pair[0]]]
    )


@pytest.mark.slow  # builds 13 registry models (~1 min on JAX here)
def test_registry_models_give_the_issues_maps():
    for (a, b), text in CIFAR_STRETCH.items():
        got = plan(f"cifar_resnet_{a}", f"cifar_resnet_{b}")
        assert got == BlockMap.parse(text, stages=3)
    for (a, b), keep in CIFAR_KEEP.items():
        got = plan(f"cifar_resnet_{a}", f"cifar_resnet_{b}")
        assert got == BlockMap.parse(_keep_map(keep), stages=3)
    for pair, text in IMAGENET.items():
        assert plan(*pair) == BlockMap.parse(text)
    for pair, text in VGG.items():
        assert plan(*pair) == BlockMap.parse(_vgg_map(text))
    with pytest.raises(ConfigError, match="incompatible types"):
        plan("resnet34", "resnet50")  # basic vs bottleneck blocks


def test_other_strategies_and_any_depth_pair():
    s20, s32, s44 = (
        _synthetic("cifar_resnet", f"r{d}", (n,) * 3, ("conv1", "bn1"))
        for d, n in ((20, 3), (32, 5), (44, 7))
    )
    assert str(plan(s20, s32, "head")) == "0:0;1:1,3;2:2,4"
    assert str(plan(s20, s32, "tail")) == "0:0;1:1;2:2,3,4"
    assert str(plan(s20, s32, "first")) == "0:0;1:1,2,3;2:4"
    assert str(plan(s32, s44, "head")) == "0:0;1:1,5;2:2,6;3:3;4:4"
    assert str(plan(s32, s20, "head")) == "0:0;3:1;4:2"
    assert str(plan(s32, s20, "tail")) == "0:0;1:1;2:2"
    for n in range(1, 12):  # every 6n+2 pair: a valid map, each block once
        for big_n in range(1, 12):
            if n == 1 and big_n > 1:
                continue
            a, b = (
                _synthetic("cifar_resnet", str(k), (k + 1,) * 3, ("c",))
                for k in (n, big_n)
            )
            for strategy in elastic.STRATEGIES:
                block_map = plan(a, b, strategy)
                elastic.validate(block_map, a, b)
                used = [src for src, _ in block_map.stages[0]]
                if big_n >= n:  # stretching uses every source block
                    assert used == list(range(n + 1))


def _compose(first, second):
    """Target block -> original block of ``second`` after ``first``, stage 0."""
    a, b = first.copies(0), second.copies(0)
    return {dst: a[src][0] for dst, (src, _) in b.items()}


@pytest.mark.parametrize("pair", [(20, 32), (20, 44), (20, 56), (32, 56)])
def test_stretch_then_squeeze_maps_give_every_block_back(pair):
    small, big = _cifar(pair[0]), _cifar(pair[1])
    n = (pair[0] - 2) // 6
    for strategy in ("inter", "head", "tail"):
        there, back = plan(small, big, strategy), plan(big, small, strategy)
        assert _compose(there, back) == {b: b for b in range(n)}, strategy


def test_map_parsing_and_formatting():
    one = BlockMap.parse("0:0;1:1,2;2:3,4", stages=3)
    assert one == BlockMap.parse("1:1,2; 2:3,4", stages=3)
    assert one.copies(1) == {0: (0, 0), 1: (1, 0), 2: (1, 1), 3: (2, 0), 4: (2, 1)}
    text = "0:0;1:1|0:0;1:1,2"
    assert str(BlockMap.parse(text)) == text
    for bad, match in [
        ("1-1", "cannot read '1-1'"),
        ("1:1;1:2", "source block 1 appears twice"),
        ("1:1,2;2:2", r"target block\(s\) \[2\] filled more than once"),
        ("0:1;1:0", "block 0 .* must map to block 0 only"),
        ("1:0", "target block 0 is reserved"),
        ("1:1|1:1", "has 2 stage maps; the model has 3"),
        ("", "non-empty string"),
    ]:
        with pytest.raises(ConfigError, match=match):
            BlockMap.parse(bad, stages=3)


# -------------------------------------------------------------------- transfer


def _source_ticket(depth=20, seed=0):
    """A pruned width-2 CIFAR ResNet on 8x8 inputs with non-trivial BN stats."""
    keras.utils.set_random_seed(seed)
    model = models.get(
        f"cifar_resnet_{depth}", input_shape=(8, 8, 3), width=2, bn_init="uniform"
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(
                rng.uniform(0.5, 2, layer.moving_variance.shape)
            )
            layer.beta.assign(rng.normal(size=layer.beta.shape) * 0.1)
    pruning.prune_magnitude(model, 0.5, scope="layerwise")
    ticket = Ticket.from_model(
        model, method="imp", round=3, rewind="7it", rewind_iterations=7
    )
    return model, ticket


@pytest.fixture(scope="module")
def source():
    return _source_ticket()


@pytest.fixture(scope="module")
def stretched(source):
    return transform(source[1], target="cifar_resnet_32")


def _layer_values(ticket, layer):
    return {
        info["path"].split("/")[1]: value
        for info, value in zip(ticket.variables, ticket.weights, strict=True)
        if info["path"].split("/")[0] == layer
    }


def test_transferred_blocks_equal_their_source_blocks_bit_for_bit(source, stretched):
    _, ticket = source
    meta = stretched.metadata["elastic"]
    assert meta["map"] == "0:0;1:1,2;2:3,4" and meta["strategy"] == "inter"
    assert meta["blocks"]["stage2_block3"] == ["stage2_block2", 1]
    pairs = [(n, n) for n in ("stem_conv", "stem_bn", "output")]
    for target_block, (source_block, _) in meta["blocks"].items():
        for role in ("conv1", "bn1", "conv2", "bn2", "shortcut_conv", "shortcut_bn"):
            pairs.append((f"{target_block}_{role}", f"{source_block}_{role}"))
    checked = 0
    for target_layer, source_layer in pairs:
        mine = _layer_values(stretched, target_layer)
        theirs = _layer_values(ticket, source_layer)
        assert mine.keys() == theirs.keys(), target_layer
        for name, value in theirs.items():
            assert mine[name].tobytes() == value.tobytes(), (target_layer, name)
            checked += 1
        if source_layer in ticket.masks:
            np.testing.assert_array_equal(
                stretched.masks[target_layer], ticket.masks[source_layer]
            )
    assert checked == sum(w.size > 0 for w in stretched.weights)  # every variable
    assert {"moving_mean", "moving_variance", "gamma", "beta"} <= set(
        _layer_values(stretched, "stage3_block4_bn2")
    )


def test_the_target_ticket_keeps_rewind_and_records_provenance(source, stretched):
    assert stretched.metadata["rewind_iterations"] == 7
    assert stretched.metadata["rewind"] == "7it"
    assert stretched.metadata["method"] == "elastic"
    src = stretched.metadata["elastic"]["source"]
    assert src["model"] == "cifar_resnet_20_2" and src["round"] == 3
    assert stretched.metadata["topology"]["architecture"]["name"] == "cifar_resnet_32_2"
    extra = stretched.metadata["elastic"]["extra_copies"]
    # layer names count blocks from 1: local copies 2 and 4 are block3, block5
    assert "stage1_block3_conv1" in extra and "stage1_block2_conv1" not in extra
    assert "stage3_block5_bn2" in extra and "stage3_block4_conv1" not in extra


def test_stretch_then_squeeze_returns_the_original_ticket(source, tmp_path):
    _, ticket = source
    for strategy in ("inter",):  # the maps of every strategy: above
        deep = transform(ticket, "cifar_resnet_32", strategy=strategy)
        path = tmp_path / f"{strategy}.ticket.npz"
        deep.save(path)  # a saved file alone: no run folder, no source model
        back = transform(str(path), "cifar_resnet_20", strategy=strategy)
        assert back.masks.keys() == ticket.masks.keys()
        for name, mask in ticket.masks.items():
            np.testing.assert_array_equal(back.masks[name], mask)
        for a, b in zip(back.weights, ticket.weights, strict=True):
            assert a.tobytes() == b.tobytes()
        assert back.metadata["elastic"]["source"]["path"] == str(path)


def test_zeroed_extra_blocks_give_the_source_networks_outputs(source, stretched):
    """A real wiring check: an extra copy whose residual branch outputs zero is
    the identity (its input is post-ReLU), so the network is the source's."""
    model, _ = source
    deep = stretched.build_model()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    unzeroed = keras.ops.convert_to_numpy(deep(x, training=False))
    for block, (_, copy) in stretched.metadata["elastic"]["blocks"].items():
        if copy > 0:
            bn = deep.get_layer(f"{block}_bn2")
            bn.gamma.assign(np.zeros(bn.gamma.shape))
            bn.beta.assign(np.zeros(bn.beta.shape))
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(deep(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(unzeroed, expected, atol=1e-4)  # the check can fail


def test_permute_copies_permutes_only_the_extra_copies(source, stretched):
    masks = controls.get("permute_copies").ticket_masks(stretched, seed=3)
    extra = set(stretched.metadata["elastic"]["extra_copies"])
    changed = 0
    for name, mask in stretched.masks.items():
        assert masks[name].sum() == mask.sum(), name
        if name not in extra:
            np.testing.assert_array_equal(masks[name], mask)
        else:
            changed += not np.array_equal(masks[name], mask)
    assert changed >= len([n for n in extra if n in stretched.masks]) - 1
    with pytest.raises(ValueError, match="no elastic provenance"):
        controls.get("permute_copies").ticket_masks(source[1], 0)


def _topology_of(ticket):
    return Architecture.from_dict(ticket.metadata["topology"]["architecture"])


def test_bad_maps_name_the_stage_and_blocks(source, stretched):
    small, big = _topology_of(source[1]), _topology_of(stretched)
    for text, match in [
        ("1:1,2;2:3", r"stage 1: target block\(s\) \[4\] of cifar_resnet_32_2 are not"),
        ("1:1,2;3:3,4", r"stage 1: source block\(s\) \[3\] do not exist"),
        ("1:1,2;2:3,4,5", r"target block\(s\) \[5\] do not exist"),
    ]:
        with pytest.raises(ConfigError, match=match):
            elastic.validate(BlockMap.parse(text, stages=3), small, big)
    lenet = _synthetic("lenet", "lenet", (3,), ("dense",))
    with pytest.raises(ConfigError, match=r"\(lenet family\)"):
        elastic.validate(BlockMap.parse("1:1"), small, lenet)
    shortcut = _synthetic("cifar_resnet", "x", (3, 3, 3), ("conv1", "shortcut_conv"))
    with pytest.raises(ConfigError, match="stem or head|incompatible types"):
        plan(small, shortcut)


def test_explicit_maps_and_errors_name_what_is_wrong(source):
    model, ticket = source
    custom = transform(ticket, "cifar_resnet_32", mapping="1:1,2,3,4")
    assert custom.metadata["elastic"]["map"] == "0:0;1:1,2,3,4"
    assert custom.metadata["elastic"]["strategy"] is None
    for kwargs, match in [
        ({"target": "cifar_resnet_33"}, "Unknown target model 'cifar_resnet_33'"),
        ({"target": "lenet_300_100"}, "lenet family"),
        ({"target": "cifar_resnet_32", "mapping": "1:1,2;2:3"}, r"\[4\] of .* not"),
        ({"target": "cifar_resnet_32", "strategy": "even"}, "Unknown elastic strategy"),
        (
            {"target": "cifar_resnet_32", "strategy": "head", "mapping": "1:1"},
            "either strategy or mapping",
        ),
    ]:
        with pytest.raises(ConfigError, match=match):
            transform(ticket, **kwargs)
    old = Ticket(ticket.masks, ticket.weights, ticket.layers, ticket.variables, {})
    with pytest.raises(ConfigError, match="did not record its model's topology"):
        transform(old, "cifar_resnet_32")
    again = transform(old, "cifar_resnet_32", source=model)  # rebuilt topology
    assert again.metadata["elastic"]["map"] == "0:0;1:1,2;2:3,4"


@pytest.mark.slow  # ImageNet ResNets and VGG at width 2 / 32x32 (~30 s here)
def test_imagenet_resnet_and_vgg_tickets_transform_block_for_block():
    keras.utils.set_random_seed(0)
    small = models.get("resnet18", input_shape=(32, 32, 3), width=2, num_classes=3)
    pruning.prune_magnitude(small, 0.5, scope="layerwise")
    deep = transform(Ticket.from_model(small), "resnet26")
    assert deep.metadata["elastic"]["map"] == IMAGENET[("resnet18", "resnet26")]
    model = deep.build_model()
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    for block, (_, copy) in deep.metadata["elastic"]["blocks"].items():
        if copy > 0:  # zero residual branches: the extra blocks are identities
            bn = model.get_layer(f"{block}_bn2")
            bn.gamma.assign(np.zeros(bn.gamma.shape))
            bn.beta.assign(np.zeros(bn.beta.shape))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(small(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    vgg = models.get("vgg13", input_shape=(16, 16, 3), num_classes=3)
    pruning.prune_magnitude(vgg, 0.5, scope="layerwise")
    ticket = Ticket.from_model(vgg)
    vgg19 = transform(ticket, "vgg19")
    np.testing.assert_array_equal(
        vgg19.masks["stage3_block4_conv"], ticket.masks["stage3_block2_conv"]
    )
    with pytest.raises(ConfigError, match="only its fixed block 0"):
        transform(
            Ticket.from_model(models.get("vgg11", input_shape=(16, 16, 3))), "vgg13"
        )
