"""On-disk cache of an instability analysis: trained copies and pair curves.

One folder holds the copies trained from one starting state with one recipe
(see :func:`keras_lottery.analysis.instability.instability`'s ``cache_dir``):

- ``copy_seed{S}.npz``: the final state (``capture_state`` list) of the copy
  trained with data-order seed ``S``; ``copy_seed{S}.json`` (written last, so
  its presence marks a finished copy): the cache key, the copy's training
  summary (:func:`copy_summary`) and the size and sha256 of the ``.npz``,
  checked before the copy is reused;
- ``pair_s{A}_s{B}.json``: the key, the curve settings and the
  :class:`~keras_lottery.analysis.results.PairResult` of the pair of copies
  ``A`` and ``B``.

The key is the start step, a fingerprint of the starting weights and masks,
and a hash of the recipe's configuration without its ``stability`` section: a
folder holding copies of another start or recipe is an error, and a pair saved
with other curve settings is evaluated again from the saved copies.

Example:

>>> cache = CopyCache("runs/imp_.../instability/round_003/copies", model, recipe, 0)
>>> found = cache.copy(seed=1)   # (state, summary), or None when not trained yet
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

import numpy as np

from keras_lottery._io import atomic_write_json, load_arrays, read_json, save_arrays
from keras_lottery.analysis.results import PairResult
from keras_lottery.manifest import file_entry, verify_file
from keras_lottery.rewind import capture_state
from keras_lottery.training import TrainingRecord

__all__ = ["CopyCache", "copy_summary"]


def copy_summary(seed: int, record: TrainingRecord) -> dict:
    """What is kept of a copy's training: its seed, steps, epochs, seconds and
    final metrics."""
    return {
        "order_seed": seed,
        "steps": record.steps,
        "epochs": record.epochs,
        "wall_time": record.wall_time,
        "final": record.final,
    }


class CopyCache:
    """Saved copies and pair curves of one analysis, in folder ``root``
    (created if missing), for copies of ``template`` trained with ``recipe``
    from step ``step``."""

    def __init__(self, root, template, recipe, step):
        self.root = os.fspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.key = {
            "start_step": step,
            "start": _fingerprint(capture_state(template)),
            "recipe": _recipe_key(recipe),
        }

    def _copy_paths(self, seed):
        base = os.path.join(self.root, f"copy_seed{seed}")
        return base + ".npz", base + ".json"

    def copy(self, seed):
        """``(state, summary)`` of the finished copy with ``seed``, or None.
        Raises ``ValueError`` if it was trained from another start or recipe."""
        arrays, meta = self._copy_paths(seed)
        if not os.path.exists(meta):  # written last: a finished copy
            return None
        saved = read_json(meta, "a copy's .json of an instability cache", ("summary",))
        if saved.get("key") != self.key:
            raise ValueError(
                f"{self.root} holds copies trained from another starting state or "
                f"recipe ({meta}: {saved.get('key')} vs. {self.key}). Use one "
                "cache folder per analysis."
            )
        if "file" in saved:  # caches written before sizes and hashes: unchecked
            verify_file(
                arrays,
                saved["file"]["size"],
                saved["file"]["sha256"],
                f"delete {arrays} and {meta} to train that copy again",
            )
        state = load_arrays(arrays, "a copy's state .npz of an instability cache")
        return state, saved["summary"]

    def save_copy(self, seed, state, summary):
        arrays, meta = self._copy_paths(seed)
        save_arrays(arrays, state)
        atomic_write_json(
            meta, {"key": self.key, "summary": summary, "file": file_entry(arrays)}
        )

    def _pair_path(self, a, b):
        return os.path.join(self.root, f"pair_s{a}_s{b}.json")

    def pair(self, a, b, curve_settings: Mapping) -> PairResult | None:
        """The saved result of seeds ``(a, b)``, or None when there is none for
        this key and these curve settings."""
        path = self._pair_path(a, b)
        if not os.path.exists(path):
            return None
        saved = read_json(path, "a pair's .json of an instability cache", ("result",))
        if saved.get("key") != self.key or saved.get("settings") != curve_settings:
            return None  # other settings: re-evaluate from the saved copies
        return PairResult.from_dict(saved["result"])

    def save_pair(self, result: PairResult, curve_settings: Mapping):
        """Saves ``result`` under its seeds."""
        atomic_write_json(
            self._pair_path(*result.seeds),
            {"key": self.key, "settings": curve_settings, "result": result.to_dict()},
        )


def _fingerprint(state) -> str:
    digest = hashlib.sha256()
    for array in state:
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _recipe_key(recipe) -> str:
    config = recipe.config.to_dict()
    config.pop("stability", None)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
