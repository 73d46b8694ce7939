"""Branches: analyses run later against an IMP run folder's saved rounds, without
redoing the trunk (open_lth's ``lottery_branch``).

Every branch starts from what round ``N`` saved (``round_NNN/ticket.npz``: the
masks and the full state at the rewind step ``k``; round 0 is the dense
network) and trains with the run's own recipe (``config.yaml``) from step ``k``:

- :func:`run_instability`: pairs of copies of the round's subnetwork that differ
  only in data order; curves and barriers in ``instability/round_NNN/``
  (``instability.json``, ``instability.png``; trained copies and finished pairs
  are kept, so an interrupted analysis resumes without retraining them);
- :func:`run_branch` with a control ``kind``: ``random_reinit`` (same masks,
  fresh initialization), ``random_prune`` (rewound weights, random masks with
  each layer's count of survivors kept) or ``shuffle_masks`` (rewound weights,
  each layer's mask randomly permuted within the layer); results in
  ``branches/round_NNN/<kind>/seed_S/record.json``.

``keras-lottery report RUN_DIR`` shows both next to the IMP rounds.

Example:

>>> summary = run_instability("runs/imp_3f2a9c1d0b7e", round=3, pairs=2)
>>> record = run_branch("runs/imp_3f2a9c1d0b7e", round=3, kind="shuffle_masks")
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np

from keras_lottery import plots, pruning, stability
from keras_lottery._io import atomic_write_json
from keras_lottery.config import RunConfig, load_config
from keras_lottery.rewind import capture_state
from keras_lottery.ticket import Ticket
from keras_lottery.training import train_from_step

KINDS = ("random_reinit", "random_prune", "shuffle_masks")
INSTABILITY = "instability"
BRANCHES = "branches"


@dataclass
class SavedRound:
    """What a finished round of a run folder provides to start a branch from."""

    run_dir: str
    round: int
    config: RunConfig
    ticket: Ticket
    record: dict

    @property
    def start_step(self) -> int:
        """The rewind step ``k`` (iterations) the round's ticket starts at."""
        return int(self.ticket.metadata.get("rewind_iterations", 0) or 0)

    def recipe(self):
        from keras_lottery.recipes import Recipe

        return Recipe(self.config)


def load_round(run_dir: str, round: int, overrides: Iterable[str] = ()) -> SavedRound:
    """Reads round ``round`` of ``run_dir``. ``overrides`` may only set
    ``stability.*`` fields: the recipe is the run's own."""
    overrides = list(overrides)
    bad = [o for o in overrides if not o.strip().startswith("stability.")]
    if bad:
        raise ValueError(
            f"Only stability.* settings can be overridden for an existing run "
            f"(its recipe is its config.yaml); got {bad}."
        )
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml).")
    config = load_config(path, overrides)
    if isinstance(round, bool) or not isinstance(round, int) or round < 0:
        raise ValueError(f"round must be an int >= 0; got {round!r}.")
    directory = os.path.join(run_dir, f"round_{round:03d}")
    if not os.path.exists(os.path.join(directory, "record.json")):
        finished = finished_rounds(run_dir)
        raise ValueError(
            f"Round {round} of {run_dir} is not finished (no "
            f"round_{round:03d}/record.json); finished rounds: "
            f"{finished or 'none'}."
        )
    with open(os.path.join(directory, "record.json")) as handle:
        record = json.load(handle)
    ticket = Ticket.load(os.path.join(directory, "ticket.npz"))
    return SavedRound(run_dir, round, config, ticket, record)


def finished_rounds(run_dir: str) -> list[int]:
    found = glob.glob(os.path.join(run_dir, "round_*", "record.json"))
    return sorted(int(os.path.basename(os.path.dirname(p))[6:]) for p in found)


# ----------------------------------------------------------------- instability


def instability_dir(run_dir: str, round: int) -> str:
    return os.path.join(run_dir, INSTABILITY, f"round_{round:03d}")


def run_instability(
    run_dir: str,
    round: int,
    overrides: Iterable[str] = (),
    verbose: int = 1,
    **settings,
) -> dict:
    """Instability of round ``round``'s subnetwork at its rewind step (round 0:
    the dense network), with the run's recipe; resumable.

    ``settings`` (``pairs``, ``points``, ``threshold``, ...) and ``overrides``
    (``"stability.points=11"``) replace the config's ``stability`` section.
    Writes ``instability/round_NNN/{instability.json, instability.png}`` and
    keeps each trained copy and finished pair under ``.../copies/``. Returns
    the saved summary.
    """
    saved = load_round(run_dir, round, overrides)
    recipe = saved.recipe()
    directory = instability_dir(run_dir, round)
    if verbose:
        print(
            f"[keras_lottery] instability of round {round} "
            f"({100 * saved.record['fraction_remaining']:.2f}% weights remaining) "
            f"from step {saved.start_step} of {run_dir}",
            flush=True,
        )
    result = stability.instability(
        saved.ticket,
        recipe,
        start_step=saved.start_step,
        settings=stability.settings_with(saved.config.stability, settings),
        cache_dir=os.path.join(directory, "copies"),
        verbose=verbose,
    )
    summary = {
        "run_dir": os.path.abspath(run_dir),
        "round": round,
        "fraction_remaining": saved.record["fraction_remaining"],
        "rewind": saved.ticket.metadata.get("rewind"),
        **result.to_dict(),
    }
    atomic_write_json(os.path.join(directory, "instability.json"), summary)
    plots.plot_instability(
        summary,
        os.path.join(directory, "instability.png"),
        title=f"round {round}, {100 * saved.record['fraction_remaining']:.1f}% "
        f"weights, k = {summary['rewind']}",
    )
    return summary


def load_instability(run_dir: str) -> dict[int, dict]:
    """``{round: instability.json}`` of every analyzed round of ``run_dir``."""
    out = {}
    pattern = os.path.join(run_dir, INSTABILITY, "round_*", "instability.json")
    for path in sorted(glob.glob(pattern)):
        with open(path) as handle:
            data = json.load(handle)
        out[int(data["round"])] = data
    return out


# -------------------------------------------------------------------- controls


def branch_dir(run_dir: str, round: int, kind: str, seed: int) -> str:
    return os.path.join(run_dir, BRANCHES, f"round_{round:03d}", kind, f"seed_{seed}")


def control_masks(kind: str, masks: dict, seed: int) -> dict[str, np.ndarray]:
    """The masks of a control: the ticket's (``random_reinit``), random with
    each layer's count kept (``random_prune``), or each layer's mask randomly
    permuted (``shuffle_masks``)."""
    _check_kind(kind)
    if kind == "random_reinit":
        return {name: np.array(mask) for name, mask in masks.items()}
    if kind == "random_prune":
        return pruning.random_masks_like(masks, seed=seed)
    rng = np.random.default_rng(seed)
    return {
        name: rng.permutation(np.asarray(mask, bool).ravel()).reshape(mask.shape)
        for name, mask in masks.items()
    }


def control_model(kind: str, ticket: Ticket, build_model, seed: int):
    """The model a control starts from.

    ``build_model()`` returns a freshly initialized model of the ticket's
    architecture (e.g. ``recipe.build_model``); it is called after seeding with
    ``seed``. ``random_reinit``: that fresh initialization, the ticket's masks.
    ``random_prune`` / ``shuffle_masks``: the ticket's rewound weights (dense
    values at step k) under the control's masks.
    """
    _check_kind(kind)
    keras.utils.set_random_seed(seed)
    model = build_model()
    weights = ticket.weights
    if kind == "random_reinit":
        mask_ids = {id(layer.mask) for layer in pruning.masked_layers(model)}
        weights = [
            value
            for variable, value in zip(model.weights, capture_state(model), strict=True)
            if id(variable) not in mask_ids
        ]
    control = dataclasses.replace(
        ticket, masks=control_masks(kind, ticket.masks, seed), weights=weights
    )
    control.apply(model)
    return model


def branch_seed(config: RunConfig, round: int, kind: str, seed: int) -> int:
    """The random seed of a control (initialization, masks, dropout): a pure
    function of the run's seed, the round, the kind and the branch seed."""
    return config.seed + 100_003 * (round + 1) + 1_009 * (KINDS.index(kind) + 1) + seed


def run_branch(
    run_dir: str, round: int, kind: str, seed: int = 0, verbose: int = 1
) -> dict:
    """Trains control ``kind`` from round ``round`` (>= 1) of ``run_dir`` from
    the round's rewind step with the run's recipe, as IMP trains its controls.
    Skips (and returns the saved record) if already done."""
    _check_kind(kind)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    directory = branch_dir(run_dir, round, kind, seed)
    path = os.path.join(directory, "record.json")
    if os.path.exists(path):
        if verbose:
            print(f"[keras_lottery] {path} exists; nothing to do.")
        with open(path) as handle:
            return json.load(handle)
    saved = load_round(run_dir, round)
    if round == 0:
        raise ValueError(
            "Round 0 is the dense network: controls need a pruned round (>= 1)."
        )
    recipe = saved.recipe()
    random_seed = branch_seed(saved.config, round, kind, seed)
    model = control_model(kind, saved.ticket, recipe.build_model, random_seed)
    recipe.compile(model)
    keras.utils.set_random_seed(random_seed)
    record = train_from_step(
        model,
        saved.start_step,
        compile_config=model.get_compile_config(),
        test_data=recipe.test_data,
        keep_best=saved.config.pruning.evaluate_at == "best",
        **recipe.fit_kwargs(verbose=2 if verbose > 1 else 0),
    )
    report = pruning.sparsity_report(model)
    result = {
        "kind": kind,
        "seed": seed,
        "round": round,
        "rewind": saved.ticket.metadata.get("rewind"),
        "start_step": saved.start_step,
        "fraction_remaining": report.fraction_remaining,
        "layers_remaining": {
            layer.name: layer.fraction_remaining for layer in report.layers
        },
        "training": dataclasses.asdict(record),
    }
    atomic_write_json(path, result)
    if verbose:
        accuracy = (record.test or {}).get("accuracy")
        print(
            f"[keras_lottery] branch {kind} (seed {seed}) of round {round}: test "
            f"accuracy {accuracy if accuracy is None else f'{accuracy:.4f}'}, "
            f"{record.wall_time:.1f}s",
            flush=True,
        )
    return result


def load_branches(run_dir: str) -> dict[int, list[dict]]:
    """``{round: [branch record, ...]}`` of every finished branch of ``run_dir``."""
    out: dict[int, list[dict]] = {}
    pattern = os.path.join(run_dir, BRANCHES, "round_*", "*", "seed_*", "record.json")
    for path in sorted(glob.glob(pattern)):
        with open(path) as handle:
            data = json.load(handle)
        out.setdefault(int(data["round"]), []).append(data)
    return out


def _check_kind(kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"Unknown branch kind {kind!r}; allowed: {list(KINDS)}.")
