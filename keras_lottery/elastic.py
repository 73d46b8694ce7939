"""Elastic lottery tickets: stretch or squeeze a ticket to a deeper or shallower
member of its model family (Chen et al., 2021, "The Elastic Lottery Ticket
Hypothesis"; the authors' ``lottery/branch/morphism.py``).

The unit is a whole block of the registry's topology
(:func:`keras_lottery.models.describe`): a residual block (convs, batch norms,
shortcut) or a VGG conv + BN. A **block map** says, per stage, which source
block fills which target blocks; blocks are copied verbatim (kernels, masks,
biases, BN gamma/beta and moving statistics), stem and head are copied as they
are, and local block 0 of every stage (the downsampling one) always maps to
block 0. The values are the source ticket's weights at its rewind point, so the
target trains from the same step ``k`` with the source recipe.

Map syntax (local block indices from 0, as the authors write them):
``src:dst,dst;src:dst`` per stage, ``|`` between stages; one stage's map
without ``|`` applies to every stage; ``0:0`` may be left out. A source block
left out of the map is dropped (squeezing); every target block must be filled
exactly once.

Strategies (:func:`plan` derives the map for any depth pair of a family):

- ``"inter"`` (default): stretching copies each block into consecutive slots,
  as many distinct blocks as possible, each as few times as possible, earlier
  blocks first (ResNet-20 -> 32: ``1:1,2;2:3,4``); squeezing keeps evenly
  spaced blocks for CIFAR ResNets (56 -> 32 keeps 1, 3, 5, 7; when the spacing
  is uneven the earlier blocks are kept densest) and the first blocks of each
  stage for the other families, as the authors' scripts do;
- ``"head"``: stretching appends further passes over the blocks (20 -> 32:
  ``1:1,3;2:2,4``); squeezing keeps the last blocks;
- ``"tail"``: stretching replicates the last block; squeezing keeps the first;
- ``"first"``: stretching replicates the first (after block 0); squeezing keeps
  the first blocks.

Example:

>>> plan("cifar_resnet_20", "cifar_resnet_32")
BlockMap('0:0;1:1,2;2:3,4')
>>> deeper = transform(ticket, target="cifar_resnet_32")       # a Ticket
>>> deeper = transform("round_005/ticket.npz", target="cifar_resnet_56",
...                    mapping="1:1,2,3,4;2:5,6,7,8")
>>> model = deeper.build_model()
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from keras_lottery.errors import ConfigError
from keras_lottery.models import registry
from keras_lottery.models.registry import Architecture
from keras_lottery.ticket import Ticket

STRATEGIES = ("inter", "head", "tail", "first")
# Families whose "inter" squeeze keeps evenly spaced blocks (the authors'
# CIFAR ResNet scripts); the others keep the first blocks of each stage.
_SPACED_SQUEEZE = ("cifar_resnet",)
# Families whose blocks may be replicated: the unit is a whole block whose input
# and output shapes agree (residual blocks; VGG's conv + BN after local 0).
FAMILIES = ("cifar_resnet", "resnet", "vgg")

StageMap = tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class BlockMap:
    """Per stage, ``(source block, (target blocks...))`` pairs sorted by source
    block; target blocks in copy order (the first is copy 0).

    >>> BlockMap.parse("1:1,2;2:3,4", stages=3).stage(0)
    {0: (0,), 1: (1, 2), 2: (3, 4)}
    """

    stages: tuple[StageMap, ...]

    @classmethod
    def from_dicts(cls, stages: Sequence[Mapping[int, Sequence[int]]]) -> BlockMap:
        return cls(
            tuple(
                tuple(
                    sorted(
                        (int(s), tuple(int(d) for d in dsts)) for s, dsts in m.items()
                    )
                )
                for m in stages
            )
        )

    @classmethod
    def parse(cls, text: str, stages: int | None = None) -> BlockMap:
        """Parses ``src:dst,dst;src:dst[|...]``. Without ``|`` the one map is
        used for each of ``stages`` stages; ``0:0`` is added where absent.
        Raises :class:`ConfigError` naming the bad part."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"A block map must be a non-empty string; got {text!r}.")
        parts = [p.strip() for p in text.split("|")]
        if stages is not None and len(parts) == 1:
            parts = parts * stages
        if stages is not None and len(parts) != stages:
            raise ConfigError(
                f"Block map {text!r} has {len(parts)} stage maps; the model has "
                f"{stages} stages (give one map for all, or one per stage joined "
                f"with '|')."
            )
        return cls.from_dicts([_parse_stage(p, text, i) for i, p in enumerate(parts)])

    def stage(self, index: int) -> dict[int, tuple[int, ...]]:
        return dict(self.stages[index])

    def copies(self, index: int) -> dict[int, tuple[int, int]]:
        """``{target block: (source block, copy index)}`` of stage ``index``."""
        return {
            dst: (src, j)
            for src, dsts in self.stages[index]
            for j, dst in enumerate(dsts)
        }

    def __str__(self) -> str:
        texts = [
            ";".join(f"{s}:{','.join(map(str, d))}" for s, d in stage)
            for stage in self.stages
        ]
        return texts[0] if len(set(texts)) == 1 else "|".join(texts)

    def __repr__(self) -> str:
        return f"BlockMap({str(self)!r})"


_ENTRY = re.compile(r"^\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*$")


def _parse_stage(part: str, text: str, index: int) -> dict[int, tuple[int, ...]]:
    mapping: dict[int, tuple[int, ...]] = {}
    filled: set[int] = set()
    for entry in part.split(";"):
        match = _ENTRY.match(entry)
        if not match:
            raise ConfigError(
                f"Block map {text!r}, stage {index + 1}: cannot read {entry!r}; "
                f"write 'src:dst,dst;src:dst' with block indices from 0."
            )
        src = int(match.group(1))
        dsts = tuple(int(d) for d in match.group(2).split(","))
        if src in mapping:
            raise ConfigError(
                f"Block map {text!r}, stage {index + 1}: source block {src} "
                f"appears twice."
            )
        twice = sorted(
            filled.intersection(dsts) | {d for d in dsts if dsts.count(d) > 1}
        )
        if twice:
            raise ConfigError(
                f"Block map {text!r}, stage {index + 1}: target block(s) {twice} "
                f"filled more than once."
            )
        mapping[src] = dsts
        filled.update(dsts)
    mapping.setdefault(0, (0,))
    if mapping[0] != (0,):
        raise ConfigError(
            f"Block map {text!r}, stage {index + 1}: block 0 (the stage's "
            f"downsampling block) must map to block 0 only; got 0:{mapping[0]}."
        )
    others = [s for s, d in mapping.items() if s and 0 in d]
    if others:
        raise ConfigError(
            f"Block map {text!r}, stage {index + 1}: target block 0 is reserved "
            f"for source block 0; source block(s) {others} map to it."
        )
    return mapping


# ----------------------------------------------------------------------- plans


def plan(source, target, strategy: str = "inter") -> BlockMap:
    """The block map that ``strategy`` gives from ``source`` to ``target``
    (each a registry model name, a model built by
    :func:`keras_lottery.models.get`, an :class:`Architecture`, or a
    :class:`Ticket` that recorded its topology).

    >>> str(plan("cifar_resnet_32", "cifar_resnet_56"))
    '0:0;1:1,2;2:3,4;3:5,6;4:7,8'
    >>> str(plan("resnet18", "resnet26"))
    '0:0;1:1|0:0;1:1,2|0:0;1:1,2,3|0:0;1:1,2'
    """
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"Unknown elastic strategy {strategy!r}; allowed: {list(STRATEGIES)}."
        )
    src = _architecture(source)
    options = dict(src.options) if not isinstance(target, Architecture) else {}
    tgt = _architecture(target, options)
    check_compatible(src, tgt)
    spaced = src.family in _SPACED_SQUEEZE
    stages = []
    for i, (s, t) in enumerate(zip(src.stages, tgt.stages, strict=True)):
        n, big_n = len(s.blocks), len(t.blocks)
        if n == 1 and big_n > 1:
            raise ConfigError(
                f"Stage {i + 1} of {src.name} has only its fixed block 0; there is "
                f"no block to replicate into {t.name}'s {big_n} blocks."
            )
        stages.append(_stage_plan(n - 1, big_n - 1, strategy, spaced))
    block_map = BlockMap.from_dicts(stages)
    validate(block_map, src, tgt)
    return block_map


def _stage_plan(m: int, big_m: int, strategy: str, spaced: bool) -> dict:
    """``{source: targets}`` for ``m`` replicable source blocks (1..m) and
    ``big_m`` target slots (1..big_m); block 0 maps to 0."""
    out: dict[int, list[int]] = {0: [0]}
    if big_m >= m:
        for slot, source in enumerate(_stretch(m, big_m, strategy), start=1):
            out.setdefault(source, []).append(slot)
    else:
        for slot, source in enumerate(_squeeze(m, big_m, strategy, spaced), start=1):
            out[source] = [slot]
    return out


def _stretch(m: int, big_m: int, strategy: str) -> list[int]:
    """The source block of each target slot 1..big_m (``big_m >= m``)."""
    if strategy == "head":  # append passes over the blocks: 1, 2, 1, 2
        return [(t % m) + 1 for t in range(big_m)]
    if strategy == "tail":  # 1, 2, 2, 2
        return list(range(1, m + 1)) + [m] * (big_m - m)
    if strategy == "first":  # 1, 1, 1, 2
        return [1] * (big_m - m) + list(range(1, m + 1))
    base, extra = divmod(big_m, m)  # inter: 1, 1, 2, 2; extra copies go early
    return [j for j in range(1, m + 1) for _ in range(base + (j <= extra))]


def _squeeze(m: int, big_m: int, strategy: str, spaced: bool) -> list[int]:
    """The kept source blocks (ascending), ``big_m < m`` of them."""
    if strategy == "head":
        return list(range(m - big_m + 1, m + 1))
    if strategy == "inter" and spaced:
        # Each kept block stands for `span` source blocks; the longer spans go
        # last, so early blocks are kept densest (56 -> 44 drops 6 and 8).
        base, extra = divmod(m, big_m)
        spans = [base + (i >= big_m - extra) for i in range(big_m)]
        return [1 + sum(spans[:i]) for i in range(big_m)]
    return list(range(1, big_m + 1))


# ------------------------------------------------------------------ validation


def check_compatible(source: Architecture, target: Architecture) -> None:
    """Raises :class:`ConfigError` unless ``target`` is another depth of
    ``source``'s family (same family, stages, stem and head)."""
    if source.family not in FAMILIES:
        raise ConfigError(
            f"Elastic depth conversion supports the families {list(FAMILIES)}; "
            f"{source.name} is a {source.family!r} model."
        )
    if target.family != source.family:
        raise ConfigError(
            f"Cannot transform {source.name} ({source.family} family) into "
            f"{target.name} ({target.family} family): elastic tickets change depth "
            f"within one family only."
        )
    if len(target.stages) != len(source.stages):
        raise ConfigError(
            f"{source.name} has {len(source.stages)} stages, {target.name} has "
            f"{len(target.stages)}: the number of stages must not change."
        )
    if tuple(source.stem) != tuple(target.stem) or tuple(source.head) != tuple(
        target.head
    ):
        raise ConfigError(
            f"{source.name} and {target.name} differ in stem or head "
            f"({source.stem}/{source.head} vs {target.stem}/{target.head})."
        )


def validate(block_map: BlockMap, source: Architecture, target: Architecture) -> None:
    """Raises :class:`ConfigError` unless ``block_map`` names existing source
    blocks, fills every target block exactly once and pairs blocks of the same
    type (same layers, same downsampling)."""
    check_compatible(source, target)
    if len(block_map.stages) != len(source.stages):
        raise ConfigError(
            f"Block map {block_map} has {len(block_map.stages)} stage maps; "
            f"{source.name} has {len(source.stages)} stages."
        )
    for i, (s, t) in enumerate(zip(source.stages, target.stages, strict=True)):
        copies = block_map.copies(i)
        missing = [b for b in block_map.stage(i) if b >= len(s.blocks)]
        if missing:
            raise ConfigError(
                f"Block map {block_map}, stage {i + 1}: source block(s) {missing} do "
                f"not exist ({source.name} has blocks 0..{len(s.blocks) - 1})."
            )
        extra = sorted(d for d in copies if d >= len(t.blocks))
        if extra:
            raise ConfigError(
                f"Block map {block_map}, stage {i + 1}: target block(s) {extra} do "
                f"not exist ({target.name} has blocks 0..{len(t.blocks) - 1})."
            )
        empty = [d for d in range(len(t.blocks)) if d not in copies]
        if empty:
            raise ConfigError(
                f"Block map {block_map}, stage {i + 1}: target block(s) {empty} of "
                f"{target.name} are not filled by any source block."
            )
        for dst, (src, _) in copies.items():
            a, b = s.blocks[src], t.blocks[dst]
            if _roles(a) != _roles(b) or a.downsample != b.downsample:
                raise ConfigError(
                    f"Block map {block_map}, stage {i + 1}: source block {src} "
                    f"({a.name}: {_roles(a)}) and target block {dst} ({b.name}: "
                    f"{_roles(b)}) are of incompatible types."
                )


def _roles(block) -> tuple[str, ...]:
    return tuple(layer[len(block.name) + 1 :] for layer in block.layers)


# ------------------------------------------------------------------ transform


def transform(
    ticket,
    target: str,
    strategy: str | None = None,
    mapping: str | BlockMap | None = None,
    source=None,
    target_options: Mapping | None = None,
) -> Ticket:
    """A ticket for ``target`` (a registry model name) from ``ticket`` (a
    :class:`Ticket` or the path of a saved one) by copying whole blocks.

    Args:
        ticket: the source ticket; its values are its rewind-point weights.
        target: registry name of the deeper or shallower model
            (``"cifar_resnet_32"``, ``"resnet34"``, ``"vgg19"``).
        strategy: one of :data:`STRATEGIES` (default ``"inter"``); or
        mapping: an explicit block map (string or :class:`BlockMap`).
        source: the source model (or its :class:`Architecture` /
            ``registry.topology`` dict) for a ticket that did not record its
            topology (tickets written before it was recorded).
        target_options: builder options for the target overriding the
            source's (e.g. ``{"blocks": [3, 4, 6, 3]}`` for the generic
            ``"resnet"``).

    Returns a :class:`Ticket` of the target (masks and rewind-point values,
    ``rewind``/``rewind_iterations`` kept) whose ``metadata["elastic"]``
    records the source, the map and which target blocks are extra copies.
    Raises :class:`ConfigError` naming the problem; nothing is written.
    """
    path = None
    if isinstance(ticket, (str, os.PathLike)):
        path = os.fspath(ticket)
        ticket = Ticket.load(path)
    if strategy is not None and mapping is not None:
        raise ConfigError("Give either strategy or mapping, not both.")
    if strategy is not None and strategy not in STRATEGIES:
        raise ConfigError(
            f"Unknown elastic strategy {strategy!r}; allowed: {list(STRATEGIES)}."
        )
    topology = _source_topology(ticket, source)
    src = Architecture.from_dict(topology["architecture"])
    model = _build_target(src, topology, target, target_options)
    tgt = registry.describe(model)
    check_compatible(src, tgt)
    if mapping is None:
        block_map = plan(src, tgt, strategy or "inter")
    else:
        block_map = (
            mapping
            if isinstance(mapping, BlockMap)
            else BlockMap.parse(mapping, stages=len(src.stages))
        )
        validate(block_map, src, tgt)
    origin, copies = _layer_origins(block_map, src, tgt)
    _write_values(model, ticket, origin)
    metadata = {
        k: v
        for k, v in ticket.metadata.items()
        if k not in ("model_config", "topology", "sparsity", "metrics", "elastic")
    }
    metadata.update(
        method="elastic",
        elastic={
            "source": {
                "model": src.name,
                "path": path,
                "method": ticket.metadata.get("method"),
                "round": ticket.metadata.get("round"),
                "sparsity": ticket.sparsity,
                "rewind": ticket.metadata.get("rewind"),
            },
            "target": tgt.name,
            "strategy": None if mapping is not None else (strategy or "inter"),
            "map": str(block_map),
            "blocks": copies,
            "extra_copies": [
                layer
                for stage in tgt.stages
                for block in stage.blocks
                if copies[block.name][1] > 0
                for layer in block.layers
            ],
        },
    )
    return Ticket.from_model(model, **metadata)


def carried_options(options: Mapping, target: str) -> dict:
    """The source model's builder ``options`` that the builder of ``target``
    takes (``depth`` and ``blocks`` do not carry over to a fixed-depth name).

    >>> carried_options({"depth": 20, "width": 16}, "cifar_resnet_32")
    {'width': 16}
    """
    accepted = registry.builder_options(target) - {"num_classes", "input_shape"}
    return {
        k: v
        for k, v in options.items()
        if k in accepted or k == "classifier_activation"
    }


def _source_topology(ticket: Ticket, source) -> dict:
    if source is not None:
        if isinstance(source, dict) and "architecture" in source:
            return source
        if isinstance(source, Architecture):
            recorded = ticket.metadata.get("topology") or {}
            return {**recorded, "architecture": source.to_dict()}
        found = registry.topology(source)
        if found is None:
            raise ConfigError(
                "source must be a model built by keras_lottery.models.get, its "
                "Architecture or a registry.topology(...) dict."
            )
        return found
    topology = ticket.metadata.get("topology")
    if not topology:
        raise ConfigError(
            "This ticket did not record its model's topology (tickets record it "
            "since keras_lottery.models.registry.topology; older files do not): "
            "pass source=<the source model> to transform it."
        )
    return topology


def _build_target(src: Architecture, topology: dict, target, options) -> object:
    if not isinstance(target, str) or target not in registry.names():
        raise ConfigError(
            f"Unknown target model {target!r}; registered models: {registry.names()}."
        )
    kept = {**carried_options(src.options, target), **(options or {})}
    kept.pop("num_classes", None), kept.pop("input_shape", None)
    num_classes = topology.get("num_classes")
    input_shape = topology.get("input_shape")
    if num_classes is None or input_shape is None:
        raise ConfigError(
            "The source topology does not record num_classes and input_shape; pass "
            "source=<the source model>."
        )
    try:
        return registry.get(
            target, num_classes=num_classes, input_shape=tuple(input_shape), **kept
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Cannot build the target {target!r}: {error}") from error


def _layer_origins(block_map: BlockMap, src: Architecture, tgt: Architecture):
    """``({target layer: source layer}, {target block: [source block, copy]})``."""
    origin = {name: name for name in (*tgt.stem, *tgt.head)}
    copies = {}
    for i, (s, t) in enumerate(zip(src.stages, tgt.stages, strict=True)):
        for dst, (source_index, j) in sorted(block_map.copies(i).items()):
            a, b = s.blocks[source_index], t.blocks[dst]
            copies[b.name] = [a.name, j]
            for role in _roles(b):
                origin[f"{b.name}_{role}"] = f"{a.name}_{role}"
    return origin, copies


def _write_values(model, ticket: Ticket, origin: Mapping[str, str]) -> None:
    """Assigns every target variable and mask its source counterpart."""
    from keras_lottery import pruning

    values = {
        info["path"]: value
        for info, value in zip(ticket.variables, ticket.weights, strict=True)
    }
    masked = pruning.masked_layers(model)
    mask_ids = {id(layer.mask) for layer in masked}
    for variable in model.weights:
        if id(variable) in mask_ids:
            continue
        layer, _, name = variable.path.rpartition("/")
        if layer not in origin:
            raise ConfigError(
                f"Target variable {variable.path} belongs to no stem, block or head "
                f"layer of the topology; this model cannot be transformed."
            )
        source_path = f"{origin[layer]}/{name}"
        _assign(variable, values.get(source_path), source_path)
    masks = {}
    for layer in masked:
        source = origin.get(layer.name)
        if source not in ticket.masks:
            raise ConfigError(
                f"Target layer {layer.name} is masked but the ticket has no mask "
                f"for {source}."
            )
        mask = ticket.masks[source]
        if tuple(mask.shape) != tuple(layer.get_mask().shape):
            raise ConfigError(
                f"Mask of {source} has shape {tuple(mask.shape)}; target layer "
                f"{layer.name} needs {tuple(layer.get_mask().shape)} (a width "
                f"change? only depth can change)."
            )
        masks[layer.name] = np.array(mask, dtype=bool)
    pruning.set_masks(model, masks)


def _assign(variable, value, source_path: str) -> None:
    if value is None:
        raise ConfigError(
            f"The ticket has no variable {source_path} for target {variable.path}."
        )
    if tuple(np.shape(value)) != tuple(variable.shape):
        raise ConfigError(
            f"{source_path} has shape {tuple(np.shape(value))}; target "
            f"{variable.path} needs {tuple(variable.shape)} (a width change? only "
            f"depth can change)."
        )
    variable.assign(value)


def _architecture(spec, options: Mapping | None = None) -> Architecture:
    """An :class:`Architecture` from a name, model, ticket or Architecture."""
    if isinstance(spec, Architecture):
        return spec
    if isinstance(spec, Ticket):
        return Architecture.from_dict(_source_topology(spec, None)["architecture"])
    if isinstance(spec, str):
        if spec not in registry.names():
            raise ConfigError(
                f"Unknown model {spec!r}; registered models: {registry.names()}."
            )
        kept = carried_options(options or {}, spec)
        kept.pop("classifier_activation", None)
        if "width" in registry.builder_options(spec):
            # Block structure does not depend on the width: build the thinnest.
            kept["width"] = 1
        key = json.dumps([spec, kept], sort_keys=True, default=str)
        if key not in _NAMED:
            # Small inputs: a plan needs the topology, not real-sized tensors.
            model = registry.get(spec, input_shape=(32, 32, 3), **kept)
            _NAMED[key] = registry.describe(model)
        return _NAMED[key]
    return registry.describe(spec)


_NAMED: dict[str, Architecture] = {}  # topologies of registry names, built once
