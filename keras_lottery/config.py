"""Typed run configuration: the single source of truth for YAML files, CLI
overrides and hash-named run folders (open_lth's discipline).

A YAML file mirrors :class:`RunConfig` section by section; unknown keys and values
of the wrong type are errors naming the key and the expected type. ``--set
section.key=value`` overrides use YAML syntax for the value. The run folder is
named by a hash of the fields that differ from their defaults, so adding a new
field with a default never renames existing runs.

Example:

>>> config = load_config("configs/lenet_mnist.yaml", ["pruning.rounds=3"])
>>> config.hashname()
'imp_3f2a9c1d0b7e'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field

import yaml


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


@dataclass
class ModelConfig:
    name: str = "lenet_300_100"
    """A name from keras_lottery.models.names()."""
    options: dict[str, typing.Any] = field(default_factory=dict)
    """Builder options, e.g. {hidden: [300, 100]}."""


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
        def check(name, ok, allowed):
            if not ok:
                raise ConfigError(
                    f"'stability.{name}' must be {allowed}; "
                    f"got {getattr(self, name)!r}."
                )

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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Sections that do not change what a run computes (left out of its hash).
ANALYSIS_SECTIONS = ("stability",)

#: Method -> the config sections it does not read (left out of its run's hash).
UNUSED_SECTIONS = {"imp": ("cs",), "cs": ("pruning",)}


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
        ignored = ANALYSIS_SECTIONS + UNUSED_SECTIONS.get(self.method, ())
        return {k: v for k, v in diff.items() if k not in ignored}

    def hashname(self) -> str:
        canonical = json.dumps(self.non_default(), sort_keys=True, default=str)
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


# --------------------------------------------------------------------------- parsing


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config key is unknown or has a value of the wrong type."""


def from_dict(data: typing.Mapping, cls=RunConfig, prefix: str = ""):
    """Builds ``cls`` from nested dicts, checking every key and type."""
    if not isinstance(data, typing.Mapping):
        raise ConfigError(
            f"'{prefix.rstrip('.') or 'config'}' must be a mapping; got {_kind(data)}."
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in '{prefix}'" if prefix else ""
        raise ConfigError(
            f"Unknown config key(s){where}: {', '.join(prefix + k for k in unknown)}. "
            f"Allowed: {', '.join(sorted(fields))}."
        )
    values = {}
    for name, value in data.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            values[name] = from_dict(
                value if value is not None else {}, hint, key + "."
            )
        else:
            values[name] = _coerce(value, hint, key)
    return cls(**values)


def _coerce(value, hint, key):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(f"'{key}' must be {_type_name(hint)}; got {_kind(value)}.")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"'{key}' must be null; got {_kind(value)}.")
    if hint is typing.Any:
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(
                f"'{key}' must be {_type_name(hint)}; got {_kind(value)}."
            )
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_type, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(
                f"'{key}' must be {_type_name(hint)}; got {_kind(value)}."
            )
        return {
            _coerce(k, key_type, f"{key} key"): _coerce(v, item, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)  # PyYAML reads '1e-3' (no dot) as a string
    if hint in (int, float, str, bool) and type(value) is hint:
        return value
    raise ConfigError(f"'{key}' must be {_type_name(hint)}; got {_kind(value)}.")


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        k, v = typing.get_args(hint)
        return f"a mapping of {_type_name(k)} to {_type_name(v)}"
    return {int: "an int", float: "a number", str: "a string", bool: "true/false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _kind(value) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Applies ``section.key=value`` strings (values parsed as YAML) to ``data``."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(
                f"Override {override!r} must look like section.key=value."
            )
        path, raw = override.split("=", 1)
        keys = path.strip().split(".")
        target = data
        for k in keys[:-1]:
            target = target.setdefault(k, {})
            if not isinstance(target, dict):
                raise ConfigError(f"Override {override!r}: '{k}' is not a section.")
        target[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def load_config(path=None, overrides: typing.Iterable[str] = ()) -> RunConfig:
    """Reads a YAML config (or the defaults if ``path`` is None) plus overrides."""
    data = {}
    if path is not None:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return from_dict(apply_overrides(data, overrides))
