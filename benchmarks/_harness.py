"""Shared timing and reporting helpers for the scripts in ``benchmarks/``.

Standard library only, so the tfmot benchmark (which runs in its own
environment, without keras_lottery or Keras 3) can use it too.

Timing discipline on a shared machine:

- every variant is timed in the same process as its baseline;
- each repeat runs every variant once, in a freshly shuffled order, after a
  garbage collection, so slow drifts of the machine's load hit all variants;
- a variant's ratio is the median over repeats of ``variant / baseline`` within
  the same repeat (paired), next to the plain ratio of the medians;
- a second, identical instance of the baseline (``*_repeat``) is timed like the
  others where it is cheap, so the noise floor is printed beside the ratios;
- the one-minute load average is recorded before and after.

Example:

>>> timings = interleaved({"a": run_a, "b": run_b}, repeats=7, seed=0)
>>> summary = summarize(timings, baseline="a")
>>> summary["b"]["ratio_paired_median"]
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping


def load_average() -> float:
    """The one-minute load average (``nan`` where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return float("nan")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(**versions) -> dict:
    """Date, machine and library versions for a result file.

    ``versions`` adds entries such as ``keras="3.15.1"``.
    """
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        **versions,
    }


def interleaved(
    runs: Mapping[str, Callable[[], float | None]],
    repeats: int,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """Calls every function of ``runs`` once per repeat, in shuffled order.

    Each function does one unit of work (e.g. one training epoch) and may return
    the number of units it did (steps), by which its times are divided. Returns
    ``{name: {"wall": [seconds per unit...], "cpu": [...]}}``, one entry per
    repeat, in repeat order so that entries can be paired across names. CPU time
    is the whole process's (all threads).
    """
    rng = random.Random(seed)
    order = list(runs)
    times = {name: {"wall": [], "cpu": []} for name in runs}
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            units = runs[name]() or 1
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            times[name]["wall"].append(wall / units)
            times[name]["cpu"].append(cpu / units)
    return times


def paired_ratio(values: list[float], baseline: list[float]) -> float:
    """Median over repeats of ``values[i] / baseline[i]``.

    >>> paired_ratio([2.0, 3.0, 2.2], [1.0, 2.0, 1.0])
    2.0
    """
    if len(values) != len(baseline) or not values:
        raise ValueError("need two non-empty series of equal length")
    return statistics.median(v / b for v, b in zip(values, baseline, strict=True))


def summarize(times: Mapping, baseline: str, scale: float = 1000.0) -> dict:
    """Medians (``scale`` x seconds: ms by default) and ratios to ``baseline``.

    For each name and clock (``wall``, ``cpu``): ``median``, ``min``,
    ``ratio_of_medians`` and ``ratio_paired_median`` (see ``paired_ratio``).
    """
    out = {}
    for name, clocks in times.items():
        entry = {}
        for clock, values in clocks.items():
            base = times[baseline][clock]
            entry[clock] = {
                "median": round(scale * statistics.median(values), 4),
                "min": round(scale * min(values), 4),
                "ratio_of_medians": round(
                    statistics.median(values) / statistics.median(base), 4
                ),
                "ratio_paired_median": round(paired_ratio(values, base), 4),
            }
        out[name] = entry
    return out


def write_json(path: str | None, payload: dict) -> None:
    """Writes ``payload`` as indented JSON to ``path`` (folders created)."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")
    print(f"# wrote {path}")


def header(title: str, info: Mapping) -> None:
    """Prints a one-line description of the run and the machine."""
    keys = ("date", "cpu_count", "cpu_model", "tensorflow", "keras", "backend")
    parts = [f"{k}={info[k]}" for k in keys if k in info]
    print(f"# {title}: " + " ".join(parts))
