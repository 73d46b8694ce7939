"""The config sections: every field's default and every value check lives
here, once. Each section checks its values when it is built (``__post_init__``),
so a bad value fails at load time naming its key, before any run folder exists;
method drivers are built from these sections (``from_config``).

The run folder is named by a hash of the fields that differ from their defaults,
without analysis-only sections and the sections of other methods, so adding a
field with a default never renames existing runs.

Example:

>>> PruningConfig(fraction=1.5)
Traceback (most recent call last):
ConfigError: 'pruning.fraction' must be a number in (0, 1); got 1.5.
>>> RunConfig(method="imp", pruning=PruningConfig(rounds=3)).hashname()
'imp_...'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field

import yaml

from keras_lottery.errors import ConfigError
from keras_lottery.pruning import SCOPES
from keras_lottery.steps import Step

#: Training augmentations (``data.augment``), see ``keras_lottery.data.pipelines``.
AUGMENTATIONS = ("cifar", "random_resized_crop", "flip", "none")
#: ``training.optimizer`` values.
OPTIMIZERS = ("sgd", "adam", "adamw")
#: ``evaluate_at``: the weights the test metrics are measured with.
EVALUATE_AT = ("final", "best")
#: ``cs.mode`` values.
CS_MODES = ("ticket", "prune")
#: ``cs.logit_reset`` values.
LOGIT_RESETS = ("paper", "code")
#: ``pruning.rewind_mode``: what a pruned round rewinds to step k.
REWIND_MODES = ("weights", "learning_rate")


class _Checks:
    """``check(name, ok, allowed)`` for one section: a :class:`ConfigError`
    naming ``<section>.<name>``, what is allowed and the value."""

    def __init__(self, section: str, values):
        self.section, self.values = section, values

    def __call__(self, name: str, ok: bool, allowed: str) -> None:
        if not ok:
            key = f"{self.section}.{name}" if self.section else name
            raise ConfigError(
                f"'{key}' must be {allowed}; got {getattr(self.values, name)!r}."
            )

    def one_of(self, name: str, options) -> None:
        self(name, getattr(self.values, name) in options, f"one of {list(options)}")

    def step(self, name: str, value=None, minimum: int = 0) -> None:
        value = getattr(self.values, name) if value is None else value
        try:
            ok = Step.parse(value).amount >= minimum
        except ValueError:
            ok = False
        self(
            name,
            ok,
            "a step like '500it', '2ep' or 0"
            + (f" of at least {minimum}" if minimum else ""),
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _in_unit_interval(value) -> bool:
    return _is_number(value) and 0 < value < 1


def _optional_int(value, minimum: int) -> bool:
    return value is None or (_is_int(value) and value >= minimum)


@dataclass
class DataConfig:
    """Which dataset, and how the validation split is held out."""

    name: str = "mnist"
    """mnist, fashion_mnist, cifar10, cifar100 (tensorflow-datasets or .npz) or
    digits (scikit-learn's bundled 8x8 digits, offline)."""
    path: str | None = None
    """A .npz with x_train/y_train/x_test/y_test; overrides the name lookup."""
    validation_size: int = 5000
    """Examples held out of the training set for validation (fixed seed)."""
    validation_seed: int = 0
    train_size: int | None = None
    """Use only the first N training examples (after holding out validation)."""
    download: bool = False
    """Allow tensorflow-datasets to download a missing dataset."""
    augment: str = "none"
    """Training augmentation: none, flip, or cifar (pad 4, random crop, flip)."""
    normalize: bool = False
    """Standardize each channel with the training images' mean and std."""
    order_seed: int | None = None
    """Seeds data order and augmentation apart from the model initialization
    (default: the run's seed). Runs sharing a seed and differing only here
    differ only in SGD noise."""

    def __post_init__(self):
        check = _Checks("data", self)
        check("name", isinstance(self.name, str) and self.name, "a dataset name")
        check("path", self.path is None or isinstance(self.path, str), "null or a path")
        check(
            "validation_size",
            _is_int(self.validation_size) and self.validation_size >= 0,
            "an int >= 0",
        )
        check(
            "validation_seed",
            _is_int(self.validation_seed) and self.validation_seed >= 0,
            "an int >= 0",
        )
        check("train_size", _optional_int(self.train_size, 1), "null or an int >= 1")
        check("download", isinstance(self.download, bool), "true/false")
        check.one_of("augment", AUGMENTATIONS)
        check("normalize", isinstance(self.normalize, bool), "true/false")
        check("order_seed", _optional_int(self.order_seed, 0), "null or an int >= 0")


@dataclass
class ModelConfig:
    name: str = "lenet_300_100"
    """A name from keras_lottery.models.names()."""
    options: dict[str, typing.Any] = field(default_factory=dict)
    """Builder options, e.g. {hidden: [300, 100]}."""

    def __post_init__(self):
        check = _Checks("model", self)
        check("name", isinstance(self.name, str) and self.name, "a model name")
        check("options", isinstance(self.options, dict), "a mapping")


@dataclass
class TrainingConfig:
    optimizer: str = "adam"
    """sgd, adam or adamw."""
    learning_rate: float = 1.2e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    """PyTorch semantics: coupled L2 for sgd/adam, decoupled for adamw."""
    batch_size: int = 60
    duration: str = "50000it"
    """Training length per round: '50000it' (rounded up to whole epochs) or '40ep'."""
    milestones: list[str] = field(default_factory=list)
    """Steps where the learning rate is multiplied by gamma, e.g. ['80ep', '120ep']."""
    gamma: float = 0.1
    warmup: str = "0it"
    """Linear learning-rate warm-up length."""

    def __post_init__(self):
        check = _Checks("training", self)
        check.one_of("optimizer", OPTIMIZERS)
        lr = self.learning_rate
        check("learning_rate", _is_number(lr) and lr > 0, "a number > 0")
        momentum = self.momentum
        check("momentum", _is_number(momentum) and 0 <= momentum < 1, "in [0, 1)")
        check("nesterov", isinstance(self.nesterov, bool), "true/false")
        decay = self.weight_decay
        check("weight_decay", _is_number(decay) and decay >= 0, "a number >= 0")
        check(
            "batch_size",
            _is_int(self.batch_size) and self.batch_size >= 1,
            "an int >= 1",
        )
        check.step("duration", minimum=1)
        for milestone in self.milestones:
            check.step("milestones", milestone)
        check("gamma", _is_number(self.gamma) and self.gamma > 0, "a number > 0")
        check.step("warmup")


@dataclass
class PruningConfig:
    fraction: float = 0.2
    """Share of the remaining weights pruned per round."""
    rounds: int | None = None
    target_sparsity: float | None = None
    """Alternative to rounds: the fewest rounds reaching this sparsity."""
    scope: str = "layerwise"
    """global or layerwise."""
    layers: str | list[str] = "paper"
    """A registry scope name ('paper', 'all', ...) or a list of layer names."""
    exclude: list[str] = field(default_factory=list)
    layer_fractions: dict[str, float] = field(default_factory=dict)
    """Per-layer rates; keys may be fnmatch patterns like 'stage*_conv1'."""
    rewind: str | int = "0it"
    """Rewind point: 0 (initialization), '500it' or '2ep'."""
    evaluate_at: str = "final"
    """final, or best (lowest validation loss epoch) for the test metrics."""
    rewind_mode: str = "weights"
    """weights (the survivors restart from their step-k values) or
    learning_rate (Renda et al.: they keep their trained values; only the
    learning-rate schedule restarts from step k)."""

    def __post_init__(self):
        check = _Checks("pruning", self)
        check("fraction", _in_unit_interval(self.fraction), "a number in (0, 1)")
        check("rounds", _optional_int(self.rounds, 1), "null or an int >= 1")
        target = self.target_sparsity
        check(
            "target_sparsity",
            target is None or _in_unit_interval(target),
            "null or a number in (0, 1)",
        )
        check.one_of("scope", SCOPES)
        check("layers", _is_names(self.layers), "a scope name or a list of names")
        check("exclude", _is_names(self.exclude, str_ok=False), "a list of names")
        for name, rate in self.layer_fractions.items():
            check(
                "layer_fractions",
                _in_unit_interval(rate),
                f"a mapping of names to numbers in (0, 1) (see {name!r})",
            )
        check.step("rewind")
        check.one_of("evaluate_at", EVALUATE_AT)
        check.one_of("rewind_mode", REWIND_MODES)

    def check_for_run(self) -> None:
        """What a run of this section needs beyond valid values: exactly one
        of ``rounds`` and ``target_sparsity``."""
        if (self.rounds is None) == (self.target_sparsity is None):
            raise ConfigError(
                "Give exactly one of 'pruning.rounds' and 'pruning.target_sparsity'; "
                f"got rounds={self.rounds!r}, target_sparsity={self.target_sparsity!r}."
            )


@dataclass
class CSConfig:
    """Continuous Sparsification (``method: cs``); defaults from the authors' code.

    ``training`` describes one round (85 epochs, lr drops at 56 and 71 in the
    authors' CIFAR recipe); the search runs ``rounds`` of it and the final
    ticket is trained for one more.
    """

    rounds: int = 3
    """Search rounds (the final ticket training is not counted)."""
    mask_initial_value: float = 0.0
    """s0: negative gives sparser tickets, positive denser."""
    penalty: float = 1e-8
    """lambda, the weight of the L1 penalty on the soft mask."""
    final_temperature: float = 200.0
    """beta at the last epoch of each round (beta starts at 1 every round)."""
    rewind: str | int = "2ep"
    """Where the ticket's weights come from: a point of the first round."""
    layers: str | list[str] = "cs"
    """A registry scope name ('cs' = the 3x3 convs) or a list of layer names."""
    mode: str = "ticket"
    """ticket (rewind, then train the hard-masked network) or prune (keep the
    trained weights and fine-tune them with the hard mask)."""
    target_sparsity: float | None = None
    """If set, binarize by keeping the top (1 - target) share of the logits
    (over all masked layers) instead of s > 0: the sparsity is then exact."""
    logit_reset: str = "paper"
    """Between rounds: paper (s <- min(beta * s, s0)) or code (s <- min(s, s0))."""
    evaluate_at: str = "final"
    """final, or best (lowest validation loss epoch) for the test metrics."""

    def __post_init__(self):
        check = _Checks("cs", self)
        check("rounds", _is_int(self.rounds) and self.rounds >= 1, "an int >= 1")
        check(
            "mask_initial_value", _is_number(self.mask_initial_value), "a finite number"
        )
        check("penalty", _is_number(self.penalty) and self.penalty >= 0, ">= 0")
        beta = self.final_temperature
        check("final_temperature", _is_number(beta) and beta > 0, "a number > 0")
        check.step("rewind")
        check("layers", _is_names(self.layers), "a scope name or a list of names")
        check.one_of("mode", CS_MODES)
        target = self.target_sparsity
        check(
            "target_sparsity",
            target is None or (_is_number(target) and 0 <= target < 1),
            "null or a number in [0, 1)",
        )
        check.one_of("logit_reset", LOGIT_RESETS)
        check.one_of("evaluate_at", EVALUATE_AT)

    def check_for_run(self) -> None:
        """Nothing beyond valid values."""


def _is_names(value, str_ok: bool = True) -> bool:
    if isinstance(value, str):
        return str_ok and bool(value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass
class StabilityConfig:
    """Instability analysis (linear mode connectivity) of a run's rounds.

    Analysis settings only: they do not change the IMP run, so the run-folder
    hash ignores this section.
    """

    pairs: int = 2
    """Replicates: pairs of copies trained from the same state."""
    points: int = 30
    """Evenly spaced interpolation coefficients in [0, 1], endpoints included."""
    threshold: float = 0.02
    """Stable when the mean error barrier is below this (the paper's 2%)."""
    train_eval_limit: int | None = 10000
    """Training-error curves use the first N (un-augmented) training examples;
    null = all of them."""
    bn_reestimate_batches: int = 0
    """0: interpolate batch-norm moving statistics like every other variable.
    N > 0: also recompute them at every point from N training batches."""
    eval_batch_size: int = 500
    seed: int = 1
    """Data-order seed of the first copy; copy j uses seed + j (pair i is
    copies 2i and 2i + 1)."""
    matching_tolerance: float = 0.002
    """A ticket is matching when its accuracy is at most this below the dense
    network's (0.2 percentage points)."""
    sweep_dense: bool = False
    """rewind-sweep also measures the dense network's instability at each k."""

    def __post_init__(self):
        check = _Checks("stability", self)
        check("pairs", _is_int(self.pairs) and self.pairs >= 1, "an int >= 1")
        check("points", _is_int(self.points) and self.points >= 2, "an int >= 2")
        check("threshold", _is_number(self.threshold) and self.threshold > 0, "> 0")
        check(
            "train_eval_limit",
            self.train_eval_limit is None
            or (_is_int(self.train_eval_limit) and self.train_eval_limit >= 1),
            "null or an int >= 1",
        )
        check(
            "bn_reestimate_batches",
            _is_int(self.bn_reestimate_batches) and self.bn_reestimate_batches >= 0,
            "an int >= 0",
        )
        check(
            "eval_batch_size",
            _is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
            "an int >= 1",
        )
        check("seed", _is_int(self.seed) and self.seed >= 0, "an int >= 0")
        check(
            "matching_tolerance",
            _is_number(self.matching_tolerance) and self.matching_tolerance >= 0,
            "a number >= 0",
        )
        check("sweep_dense", isinstance(self.sweep_dense, bool), "true/false")


@dataclass
class RetrainConfig:
    """Sparse-retraining tweaks (Jaiswal et al., 2101.03255) applied whenever a
    ticket is retrained: IMP's pruned rounds and their controls, the CS
    ticket and its controls (no kd, no lrsi: CS has no dense round), branches,
    elastic arms and ``keras-lottery retrain``; never a dense round (IMP's
    round 0 is the KD teacher) or CS's search. See
    docs/tweaks.md; the names are registered in
    :mod:`keras_lottery.tweaks.registry`."""

    tweaks: list[str] = field(default_factory=list)
    """Any of swish, mish, elu, softplus, gelu, pswish (at most one soft
    activation), extra_skips, label_smoothing, kd, lrsi."""
    label_smoothing: float = 0.1
    """alpha: 1 - alpha on the true class, alpha / (C - 1) on each other."""
    kd_temperature: float = 5.0
    kd_alpha: float = 0.9
    """Weight of the distillation term (1 - kd_alpha on the cross-entropy)."""
    skip_alpha: float = 1.0
    """Multiplier of the extra skip paths."""
    lrsi_iterations: int = 180
    skip_bn_gamma: float = 1.0
    """Initial gamma of the extra paths' BNs: 1 as in ToST; 0 starts the paths
    silent in training mode too (docs/tweaks.md)."""
    skip_fade_epochs: int = 0
    """0: the multiplier stays ``skip_alpha`` (ToST's code); N: it falls
    linearly to 0 over the first N epochs of retraining (the paper's "ghost"
    paths)."""

    def __post_init__(self):
        from keras_lottery.tweaks import registry  # the registered tweak names

        check = _Checks("retrain", self)
        check("tweaks", _is_names(self.tweaks, str_ok=False), "a list of names")
        for name in self.tweaks:
            check("tweaks", name in registry.names(), f"names from {registry.names()}")
        check("tweaks", len(set(self.tweaks)) == len(self.tweaks), "without repeats")
        soft = [n for n in self.tweaks if n in registry.SOFT_ACTIVATIONS]
        check("tweaks", len(soft) <= 1, "a list naming at most one soft activation")
        smoothing = self.label_smoothing
        check(
            "label_smoothing",
            _is_number(smoothing) and 0 <= smoothing < 1,
            "a number in [0, 1)",
        )
        temperature = self.kd_temperature
        check("kd_temperature", _is_number(temperature) and temperature > 0, "> 0")
        alpha = self.kd_alpha
        check("kd_alpha", _is_number(alpha) and 0 <= alpha <= 1, "in [0, 1]")
        check("skip_alpha", _is_number(self.skip_alpha), "a finite number")
        iterations = self.lrsi_iterations
        check("lrsi_iterations", _is_int(iterations) and iterations >= 1, "an int >= 1")
        gamma = self.skip_bn_gamma
        check("skip_bn_gamma", _is_number(gamma) and gamma >= 0, "a number >= 0")
        fade = self.skip_fade_epochs
        check("skip_fade_epochs", _is_int(fade) and fade >= 0, "an int >= 0")


#: Sections that do not change what a run computes (left out of its hash).
ANALYSIS_SECTIONS = ("stability",)

#: Method name -> its config section. A run's hash leaves out the sections of
#: the other methods; ``keras_lottery.methods`` registers a driver per name.
METHOD_SECTIONS = {"imp": "pruning", "cs": "cs"}


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    method: str = "imp"
    """imp (iterative magnitude pruning, section pruning) or cs (Continuous
    Sparsification, section cs)."""
    pruning: PruningConfig = field(default_factory=PruningConfig)
    cs: CSConfig = field(default_factory=CSConfig)
    baselines: list[str] = field(
        default_factory=lambda: ["random_reinit", "random_prune"]
    )
    seed: int = 0
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)

    def __post_init__(self):
        check = _Checks("", self)
        check.one_of("method", tuple(METHOD_SECTIONS))
        from keras_lottery import controls  # the registered control names

        check("baselines", _is_names(self.baselines, str_ok=False), "a list of names")
        for name in self.baselines:
            check(
                "baselines",
                name in controls.names(),
                f"names from {list(controls.names())}",
            )
            check(
                "baselines",
                name not in controls.names() or not controls.get(name).elastic_only,
                "controls a method can train ('permute_copies' needs an elastic "
                "ticket: keras-lottery elastic --control)",
            )
        check("seed", _is_int(self.seed) and self.seed >= 0, "an int >= 0")
        dense_only = [t for t in self.retrain.tweaks if t in ("kd", "lrsi")]
        if dense_only and self.method == "cs":
            raise ConfigError(
                f"'retrain.tweaks' {dense_only} need a dense round (kd: its "
                "trained network is the teacher; lrsi: its initialization is "
                "rescaled before masking): method 'cs' has none."
            )

    @property
    def method_config(self):
        """The section of this run's method (``pruning`` for IMP, ``cs`` for CS)."""
        return getattr(self, METHOD_SECTIONS[self.method])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def non_default(self) -> dict:
        """The fields that differ from their defaults (what names the run),
        without analysis-only sections (``stability``) and the sections the
        run's method does not use (``cs`` for IMP, ``pruning`` for CS)."""
        diff = _diff(self, RunConfig())
        if diff is _SAME:
            return {}
        own = METHOD_SECTIONS[self.method]
        ignored = ANALYSIS_SECTIONS + tuple(
            s for s in METHOD_SECTIONS.values() if s != own
        )
        return {k: v for k, v in diff.items() if k not in ignored}

    def hashed_fields(self) -> dict:
        """:meth:`non_default` with ``data.path`` replaced by the sha256 of the
        file's content (so a file fixed in place names a new run, a moved file
        the same one; a path that does not exist stays the path): what names
        run and sweep folders."""
        identity = self.non_default()
        from keras_lottery.identity import data_digest  # reads the data file

        digest = data_digest(self.data) if self.data.path else None
        if digest is not None:
            data = dict(identity["data"])
            data["path"] = {"sha256": digest}
            identity = dict(identity, data=data)
        return identity

    def hashname(self) -> str:
        """``<method>_<12 hex digits>``: the sha256 of :meth:`hashed_fields`."""
        canonical = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
        return f"{self.method}_{digest}"


def _diff(value, default):
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            sub = _diff(getattr(value, f.name), getattr(default, f.name))
            if sub is not _SAME:
                out[f.name] = sub
        return out if out else _SAME
    return _SAME if value == default else value


_SAME = object()
