"""Controls: the random subnetworks a ticket is compared with, registered by name
(open_lth's ``lottery/branch`` discipline: one class per control).

- ``random_reinit``: the ticket's masks, a fresh random initialization
  (Frankle & Carbin);
- ``random_prune``: the ticket's rewound weights under random masks with each
  layer's count of survivors kept;
- ``shuffle_masks``: the ticket's rewound weights, each layer's mask randomly
  permuted within the layer (Frankle et al., "Pruning neural networks at
  initialization: why are we missing the mark?");
- ``permute_copies``: for a ticket made by :func:`keras_lottery.elastic.transform`,
  the rewound weights with the mask of every extra copy of a replicated block
  (copy j > 0) randomly permuted within each tensor (the Elastic LTH authors'
  random-mask control, ``permute_copy``); original blocks keep their masks.

IMP and Continuous Sparsification train the controls named in ``baselines``
every round; ``keras-lottery branch`` trains one later on a saved round. Both
build the control with :func:`control_model`; only the seeds differ (see
:func:`in_run_seeds` and :func:`branch_seed`).

Example:

>>> model = control_model("random_prune", ticket, recipe.build_model, seed=7)
>>> register(MyControl())   # a new control, by name, everywhere at once
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery.rewind import capture_state
from keras_lottery.ticket import Ticket


class Control:
    """A named control: its masks from the ticket's, and whether it keeps the
    ticket's rewound weights (``False``: a fresh initialization)."""

    name: str = ""
    keeps_weights: bool = True
    # True for controls of transformed (elastic) tickets only: a method's
    # in-run ``baselines`` cannot use them.
    elastic_only: bool = False

    def masks(
        self, masks: Mapping[str, np.ndarray], seed: int
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def ticket_masks(self, ticket: Ticket, seed: int) -> dict[str, np.ndarray]:
        """The control's masks for ``ticket`` (controls that need more than
        the masks, e.g. the ticket's provenance, override this)."""
        return self.masks(ticket.masks, seed)


class RandomReinit(Control):
    """Same masks, fresh initialization."""

    name = "random_reinit"
    keeps_weights = False

    def masks(self, masks, seed):
        return {name: np.array(mask) for name, mask in masks.items()}


class RandomPrune(Control):
    """Rewound weights, random masks with each layer's count kept."""

    name = "random_prune"

    def masks(self, masks, seed):
        return pruning.random_masks_like(masks, seed=seed)


class ShuffleMasks(Control):
    """Rewound weights, each layer's mask randomly permuted within the layer."""

    name = "shuffle_masks"

    def masks(self, masks, seed):
        rng = np.random.default_rng(seed)
        return {
            name: rng.permutation(np.asarray(mask, bool).ravel()).reshape(mask.shape)
            for name, mask in masks.items()
        }


class PermuteCopies(Control):
    """Rewound weights; each extra copy's mask permuted within its tensor."""

    name = "permute_copies"
    elastic_only = True

    def masks(self, masks, seed):
        raise ValueError(
            "permute_copies needs an elastic ticket (its metadata says which "
            "blocks are extra copies): use control_model or ticket_masks."
        )

    def ticket_masks(self, ticket, seed):
        extra = (ticket.metadata.get("elastic") or {}).get("extra_copies")
        if extra is None:
            raise ValueError(
                "permute_copies applies to tickets made by keras_lottery.elastic."
                "transform; this ticket has no elastic provenance."
            )
        rng = np.random.default_rng(seed)
        out = {name: np.array(mask, bool) for name, mask in ticket.masks.items()}
        for name in extra:
            if name in out:  # batch norms are in blocks but carry no mask
                out[name] = rng.permutation(out[name].ravel()).reshape(out[name].shape)
        return out


_REGISTRY: dict[str, Control] = {}


def register(control: Control) -> Control:
    """Makes ``control`` available by its name (config ``baselines``,
    ``keras-lottery branch --kind``)."""
    if not control.name or control.name in _REGISTRY:
        raise ValueError(
            f"A control needs a new, non-empty name; got {control.name!r}."
        )
    _REGISTRY[control.name] = control
    return control


for _control in (RandomReinit(), RandomPrune(), ShuffleMasks(), PermuteCopies()):
    register(_control)


def names() -> tuple[str, ...]:
    """The registered controls, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Control:
    """The control registered as ``name`` (``ValueError`` listing the names
    otherwise)."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown control {name!r}; allowed: {list(_REGISTRY)}.")
    return _REGISTRY[name]


def control_masks(kind: str, masks: Mapping, seed: int) -> dict[str, np.ndarray]:
    """The masks of control ``kind`` given the ticket's ``masks``."""
    return get(kind).masks(masks, seed)


def control_model(
    kind: str,
    ticket: Ticket,
    build_model: Callable,
    seed: int,
    mask_seed: int | None = None,
):
    """The model control ``kind`` of ``ticket`` starts from.

    The global random seed is set to ``seed`` and ``build_model()`` returns a
    freshly initialized model of the ticket's architecture (e.g.
    ``recipe.build_model``). ``random_reinit`` keeps that initialization under
    the ticket's masks; the others take the ticket's rewound weights under the
    control's masks, drawn with ``mask_seed`` (default ``seed``).
    """
    control = get(kind)
    keras.utils.set_random_seed(seed)
    model = build_model()
    weights = ticket.weights
    if not control.keeps_weights:
        mask_ids = {id(layer.mask) for layer in pruning.masked_layers(model)}
        weights = [
            value
            for variable, value in zip(model.weights, capture_state(model), strict=True)
            if id(variable) not in mask_ids
        ]
    masks = control.ticket_masks(ticket, seed if mask_seed is None else mask_seed)
    dataclasses.replace(ticket, masks=masks, weights=weights).apply(model)
    return model


def in_run_seeds(run_seed: int, phase: int, index: int, mask_phase: int):
    """``(seed, mask_seed)`` of the ``index``-th control that a method trains
    itself after phase ``phase`` (IMP: the round; CS: the search rounds + 1).

    ``mask_phase`` is IMP's round for its masks (``None`` for CS, whose masks
    use ``seed``). Kept apart from :func:`branch_seed` so that a control run
    later is an independent replicate; the arithmetic is what produced the
    recorded results, so it stays as it is.
    """
    seed = run_seed + 1000 * (phase + 1) + index
    mask_seed = seed if mask_phase is None else run_seed + 7919 * mask_phase
    return seed, mask_seed


def branch_seed(run_seed: int, round: int, kind: str, seed: int) -> int:
    """The random seed of a control trained later on a saved round
    (initialization, masks, dropout): a pure function of the run's seed, the
    round, the control and the branch's replicate seed."""
    kinds = ("random_reinit", "random_prune", "shuffle_masks", "permute_copies")
    index = kinds.index(kind) if kind in kinds else len(kinds) + names().index(kind)
    return run_seed + 100_003 * (round + 1) + 1_009 * (index + 1) + seed
