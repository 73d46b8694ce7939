"""Compares two output folders of short_commands.sh: .npz arrays bitwise (and
the ticket metadata), JSON exactly except wall-clock fields and absolute run
folder paths, PNGs bytewise, text with wall-clock numbers masked.

usage: python compare_trees.py BEFORE_DIR AFTER_DIR
(exit status 1 when a result file differs)
"""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

#: Fields that hold wall-clock time or where a folder lies, not a result.
IGNORED_KEYS = {"wall_time", "seconds", "run_dir"}
#: The runs' console output (timings, progress bars) is not a result file.
SKIPPED = {"log.txt", "stderr.txt", "which.txt"}


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def masked_text(text: str) -> str:
    """The text with numbers of one decimal (seconds columns) masked and runs of
    whitespace collapsed (column widths follow the numbers)."""
    return re.sub(r"\s+", " ", re.sub(r"\b\d+\.\ds?\b", "#", text))


def files(root: str) -> dict[str, str]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = path
    return found


def same_npz(a: str, b: str) -> bool:
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        if sorted(x.files) != sorted(y.files):
            return False
        for key in x.files:
            if key == "metadata":
                meta_x = json.loads(bytes(x[key]).decode())
                meta_y = json.loads(bytes(y[key]).decode())
                if without_times(meta_x) != without_times(meta_y):
                    return False
            elif (x[key].dtype, x[key].shape, x[key].tobytes()) != (
                y[key].dtype,
                y[key].shape,
                y[key].tobytes(),
            ):
                return False
    return True


def compare(path_a: str, path_b: str) -> str:
    """``"same"``, ``"different"`` (a result), or ``"text"`` (timings or
    source paths only)."""
    if path_a.endswith(".npz"):
        return "same" if same_npz(path_a, path_b) else "different"
    if path_a.endswith(".json"):
        with open(path_a) as a, open(path_b) as b:
            same = without_times(json.load(a)) == without_times(json.load(b))
        return "same" if same else "different"
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        data_a, data_b = a.read(), b.read()
    if data_a == data_b:
        return "same"
    if path_a.endswith(".png"):
        return "different"
    same = masked_text(data_a.decode()) == masked_text(data_b.decode())
    return "same" if same else "text"


def main(before: str, after: str) -> int:
    a, b = files(before), files(after)
    missing = sorted(set(a) - set(b) - SKIPPED)
    extra = sorted(set(b) - set(a) - SKIPPED)
    outcome: dict[str, list[str]] = {"same": [], "different": [], "text": []}
    for rel in sorted(set(a) & set(b) - SKIPPED):
        outcome[compare(a[rel], b[rel])].append(rel)
    print(f"only in {before}: {missing}\nonly in {after}: {extra}")
    print(f"identical: {len(outcome['same'])}")
    print(f"different results: {outcome['different']}")
    print(f"text differing beyond timings (inspect): {outcome['text']}")
    return 1 if outcome["different"] or missing or extra else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
