"""keras_lottery.config.sections: every default and value check, and the
run-folder hash."""

import dataclasses
import hashlib
import json
import os

import pytest

from keras_lottery.config import (
    AUGMENTATIONS,
    METHOD_SECTIONS,
    ConfigError,
    CSConfig,
    DataConfig,
    PruningConfig,
    RunConfig,
    StabilityConfig,
    TrainingConfig,
    load_config,
)

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")

# The short IMP run used to check the documented commands before and after the
# package restructure (its run folder was imp_aac206db17c7 then).
SHORT_IMP = [
    "data.path=/work/shared/data/mnist_subset.npz",
    "data.train_size=2000",
    "pruning.rounds=2",
    "training.duration=300it",
    "data.validation_size=1000",
]


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "pruning.fraction=1.5",
            "'pruning.fraction' must be a number in (0, 1); got 1.5.",
        ),
        (
            "pruning.fraction=.nan",
            "'pruning.fraction' must be a number in (0, 1); got nan.",
        ),
        ("method=elth", "'method' must be one of ['imp', 'cs']; got 'elth'."),
        (
            "pruning.scope=glob",
            "'pruning.scope' must be one of ['global', 'layerwise']; got 'glob'.",
        ),
        (
            "baselines=[foo]",
            "'baselines' must be names from "
            "['random_reinit', 'random_prune', 'shuffle_masks', 'permute_copies']; "
            "got ['foo'].",
        ),
        (
            "baselines=[permute_copies]",
            "'baselines' must be controls a method can train ('permute_copies' "
            "needs an elastic ticket: keras-lottery elastic --control); got "
            "['permute_copies'].",
        ),
        (
            "training.duration=0it",
            "'training.duration' must be a step like '500it', '2ep' or 0 "
            "of at least 1; got '0it'.",
        ),
        ("cs.mode=x", "'cs.mode' must be one of ['ticket', 'prune']; got 'x'."),
        (
            "data.augment=x",
            "'data.augment' must be one of "
            "['cifar', 'random_resized_crop', 'flip', 'none']; got 'x'.",
        ),
        ("data.validation_size=-1", "'data.validation_size' must be an int >= 0"),
        ("data.train_size=0", "'data.train_size' must be null or an int >= 1"),
        ("data.order_seed=-2", "'data.order_seed' must be null or an int >= 0"),
        ("model.name=''", "'model.name' must be a model name; got ''."),
        ("training.optimizer=rmsprop", "'training.optimizer' must be one of"),
        ("training.learning_rate=0", "'training.learning_rate' must be a number > 0"),
        ("training.momentum=1", "'training.momentum' must be in [0, 1); got 1.0."),
        (
            "training.weight_decay=-1e-4",
            "'training.weight_decay' must be a number >= 0",
        ),
        ("training.batch_size=0", "'training.batch_size' must be an int >= 1"),
        ("training.milestones=[2ep, 3 epochs]", "'training.milestones' must be a step"),
        ("training.gamma=0", "'training.gamma' must be a number > 0"),
        ("pruning.rounds=-1", "'pruning.rounds' must be null or an int >= 1"),
        ("pruning.target_sparsity=1", "'pruning.target_sparsity' must be null or"),
        ("pruning.layer_fractions={out: 1.0}", "'pruning.layer_fractions' must be"),
        ("pruning.rewind=2epochs", "'pruning.rewind' must be a step"),
        ("pruning.evaluate_at=last", "'pruning.evaluate_at' must be one of"),
        ("pruning.layers=''", "'pruning.layers' must be a scope name or a list"),
        ("cs.rounds=0", "'cs.rounds' must be an int >= 1; got 0."),
        ("cs.penalty=-1", "'cs.penalty' must be >= 0; got -1.0."),
        ("cs.final_temperature=0", "'cs.final_temperature' must be a number > 0"),
        ("cs.rewind=x", "'cs.rewind' must be a step"),
        ("cs.target_sparsity=1", "'cs.target_sparsity' must be null or a number"),
        ("cs.logit_reset=none", "'cs.logit_reset' must be one of ['paper', 'code']"),
        ("cs.mask_initial_value=.inf", "'cs.mask_initial_value' must be a finite"),
        ("stability.pairs=0", "'stability.pairs' must be an int >= 1; got 0."),
        ("stability.points=1", "'stability.points' must be an int >= 2; got 1."),
        ("stability.threshold=0", "'stability.threshold' must be > 0"),
        ("stability.train_eval_limit=0", "'stability.train_eval_limit' must be null"),
        ("seed=-1", "'seed' must be an int >= 0; got -1."),
    ],
)
def test_each_section_rejects_bad_values_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "build,key",
    [
        (lambda: PruningConfig(fraction=1.5), "'pruning.fraction'"),
        (lambda: CSConfig(mode="x"), "'cs.mode'"),
        (lambda: TrainingConfig(optimizer="rmsprop"), "'training.optimizer'"),
        (lambda: TrainingConfig(warmup=-1), "'training.warmup' must be a step"),
        (lambda: DataConfig(augment="mixup"), "'data.augment'"),
        (lambda: RunConfig(baselines=["foo"]), "'baselines'"),
        (
            lambda: dataclasses.replace(PruningConfig(), scope="glob"),
            "'pruning.scope'",
        ),
    ],
)
def test_sections_check_their_values_when_built(build, key):
    # Not only load_config: a section built in code (or replaced) is checked too.
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build()


def test_every_augmentation_and_default_is_valid():
    for augment in AUGMENTATIONS:
        assert DataConfig(augment=augment).augment == augment
    RunConfig(method="cs")  # the defaults pass their own checks


def test_a_run_needs_exactly_one_of_rounds_and_target_sparsity():
    message = "Give exactly one of 'pruning.rounds' and 'pruning.target_sparsity'"
    with pytest.raises(ConfigError, match=message):
        PruningConfig().check_for_run()
    with pytest.raises(ConfigError, match=message):
        PruningConfig(rounds=2, target_sparsity=0.5).check_for_run()
    PruningConfig(rounds=1).check_for_run()
    PruningConfig(target_sparsity=0.9).check_for_run()
    CSConfig().check_for_run()


def test_method_config_is_the_methods_section():
    assert METHOD_SECTIONS == {"imp": "pruning", "cs": "cs"}
    imp = RunConfig(pruning=PruningConfig(rounds=3))
    assert imp.method_config is imp.pruning
    cs = RunConfig(method="cs")
    assert cs.method_config is cs.cs


# --------------------------------------------------------------------------- hash


def test_hash_of_the_documented_short_run():
    # data.path is hashed by the file's sha256 (docs/reliability.md): the folder
    # was imp_aac206db17c7 while the path itself was hashed, and still is where
    # the file does not exist (loading it fails later).
    config = load_config(os.path.join(CONFIGS, "lenet_mnist.yaml"), SHORT_IMP)
    if os.path.exists(SHORT_IMP[0].split("=", 1)[1]):
        assert config.hashname() == "imp_4df4494f476e"
    else:
        assert config.hashname() == "imp_aac206db17c7"


def test_hash_of_a_data_file_follows_its_content_not_its_path(tmp_path):
    first, moved = tmp_path / "a.npz", tmp_path / "b.npz"
    first.write_bytes(b"one")
    moved.write_bytes(b"one")
    a = load_config(None, [f"data.path={first}"])
    assert a.hashname() == load_config(None, [f"data.path={moved}"]).hashname()
    digest = hashlib.sha256(b"one").hexdigest()
    canonical = json.dumps({"data": {"path": {"sha256": digest}}}, sort_keys=True)
    assert a.hashname() == "imp_" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    before = a.hashname()
    first.write_bytes(b"three")  # fixed in place: a new run folder
    assert a.hashname() != before


def test_hash_is_the_digest_of_the_non_default_fields():
    config = load_config(None, ["pruning.rounds=3", "training.batch_size=32"])
    assert config.non_default() == {
        "pruning": {"rounds": 3},
        "training": {"batch_size": 32},
    }
    canonical = json.dumps(config.non_default(), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert config.hashname() == f"imp_{digest}"
    # The defaults name nothing: the digest of {}.
    assert load_config(None).non_default() == {}
    assert load_config(None).hashname() == "imp_44136fa355b3"
    assert (
        load_config(None, ["method=cs"]).hashname()
        == "cs_"
        + (hashlib.sha256(json.dumps({"method": "cs"}).encode()).hexdigest()[:12])
    )


def test_hash_names_the_non_default_fields_only():
    a = load_config(None, ["pruning.rounds=3"])
    b = load_config(None, ["pruning.rounds=3", "seed=0"])  # 0 is the default
    c = load_config(None, ["pruning.rounds=4"])
    assert a.hashname() == b.hashname() != c.hashname()
    assert a.hashname().startswith("imp_") and len(a.hashname()) == 16
    assert a.non_default() == {"pruning": {"rounds": 3}}


@pytest.mark.parametrize(
    "extra",
    [
        ["stability.pairs=5", "stability.points=7", "stability.seed=3"],
        ["cs.rounds=5", "cs.mode=prune", "cs.penalty=0.1"],
    ],
)
def test_analysis_and_other_method_sections_do_not_change_an_imp_hash(extra):
    config = load_config(os.path.join(CONFIGS, "lenet_mnist.yaml"), SHORT_IMP + extra)
    base = load_config(os.path.join(CONFIGS, "lenet_mnist.yaml"), SHORT_IMP)
    assert config.hashname() == base.hashname()
    assert not {"stability", "cs"} & set(config.non_default())


def test_analysis_and_other_method_sections_do_not_change_a_cs_hash():
    cs = load_config(None, ["method=cs", "cs.rounds=2"])
    for extra in (["pruning.rounds=9", "pruning.scope=global"], ["stability.pairs=4"]):
        other = load_config(None, ["method=cs", "cs.rounds=2", *extra])
        assert other.hashname() == cs.hashname()
    assert cs.hashname().startswith("cs_")
    assert cs.hashname() != load_config(None, ["method=cs"]).hashname()
    # The method's own section does change it.
    assert cs.non_default() == {"method": "cs", "cs": {"rounds": 2}}


def test_stability_section_is_typed_and_not_part_of_the_run_hash():
    plain = RunConfig()
    changed = load_config(None, ["stability.points=11", "stability.threshold=0.05"])
    assert changed.stability.points == 11 and changed.stability.threshold == 0.05
    assert changed.hashname() == plain.hashname()
    assert load_config(None, ["seed=3"]).hashname() != plain.hashname()
    for override, match in (
        ("stability.points=1", "stability.points"),
        ("stability.pairs=0", "stability.pairs"),
        ("stability.threshold=-0.1", "stability.threshold"),
        ("stability.train_eval_limit=0", "stability.train_eval_limit"),
        ("stability.pionts=3", "stability.pionts"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [override])
    assert StabilityConfig().points == 30 and StabilityConfig().threshold == 0.02


def test_retrain_and_rewind_mode_defaults_keep_every_hash():
    # The hashes of configs written before these fields existed.
    assert load_config(None).hashname() == "imp_44136fa355b3"
    short = ["pruning.rounds=3", "pruning.rewind=2ep"]
    assert load_config(None, short).hashname() == "imp_195268bad4a7"
    tweaked = load_config(None, [*short, "retrain.tweaks=[swish, kd]"])
    assert tweaked.non_default()["retrain"] == {"tweaks": ["swish", "kd"]}
    lr = load_config(None, [*short, "pruning.rewind_mode=learning_rate"])
    assert len({tweaked.hashname(), lr.hashname(), "imp_195268bad4a7"}) == 3


def test_retrain_section_errors_name_the_key_and_allowed_values():
    with pytest.raises(ConfigError, match=r"'retrain.tweaks' must be names from \("):
        load_config(None, ["retrain.tweaks=[relu]"])
    with pytest.raises(ConfigError, match=r"'retrain.kd_alpha' must be in \[0, 1\]"):
        load_config(None, ["retrain.kd_alpha=1.5"])
    with pytest.raises(ConfigError, match=r"'retrain.tweaks' \['kd'\] need a dense"):
        load_config(None, ["method=cs", "retrain.tweaks=[label_smoothing, kd]"])
    assert load_config(None, ["method=cs", "retrain.tweaks=[label_smoothing]"])
