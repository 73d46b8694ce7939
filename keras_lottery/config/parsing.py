"""Typed parsing of YAML configs: every key and type is checked against the
config dataclasses, and ``section.key=value`` overrides use YAML syntax.

Example:

>>> config = load_config("configs/lenet_mnist.yaml", ["pruning.rounds=3"])
>>> from_dict({"pruning": {"fraction": "x"}})
Traceback (most recent call last):
ConfigError: 'pruning.fraction' must be a number; got str 'x'.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing

import yaml

from keras_lottery.config.sections import ConfigError, RunConfig

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def from_dict(data: typing.Mapping, cls=RunConfig, prefix: str = ""):
    """Builds ``cls`` from nested dicts, checking every key and type."""
    if not isinstance(data, typing.Mapping):
        raise ConfigError(
            f"'{prefix.rstrip('.') or 'config'}' must be a mapping; got {_kind(data)}."
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - set(fields))  # YAML keys: any type
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
        try:
            target[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(
                f"Override {override!r}: the value is not valid YAML "
                f"({getattr(error, 'problem', None) or error})."
            ) from error
    return data


def _read_yaml(path):
    """The YAML document in ``path`` (``{}`` if empty); a file that is not YAML
    text is a :class:`ConfigError` naming it and the line."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return yaml.safe_load(raw.decode("utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path} is not a YAML config: not UTF-8 text ({error.reason} at byte "
            f"{error.start})."
        ) from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{path} is not a valid YAML config{line}: {problem}. A config is a "
            "mapping of sections, e.g. 'pruning:\n  rounds: 3'."
        ) from error


def load_config(path=None, overrides: typing.Iterable[str] = ()) -> RunConfig:
    """Reads a YAML config (or the defaults if ``path`` is None) plus overrides."""
    data = {}
    if path is not None:
        data = _read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return from_dict(apply_overrides(data, overrides))
