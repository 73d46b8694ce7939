"""Reports of run folders: the method's table and figure, with the results of
branches run later (controls, instability analyses) joined to IMP's rounds.

Which method made a folder is read from its ``config.yaml``; the table and
figure come from the method's registry entry
(:mod:`keras_lottery.methods.registry`).

Example:

>>> print(write_report("runs/imp_3f2a9c1d0b7e"))
"""

from __future__ import annotations

import os

from keras_lottery import paths
from keras_lottery._io import atomic_write_text, read_json
from keras_lottery.methods import registry


def method_of(directory: str) -> str:
    """The method of a run folder, from its ``config.yaml``."""
    from keras_lottery.runs.runner import load_config_of

    return load_config_of(directory).method


def summary(directory: str, branches: bool = False) -> dict:
    """What ``result.json`` holds besides the config, read from the phase
    folders (so it works on unfinished runs too); with ``branches``, controls
    and instability analyses run later join IMP's rounds."""
    result = registry.get(method_of(directory)).summarize(directory)
    if branches and "rounds" in result:
        result["rounds"] = with_branches(directory, result["rounds"])
    return result


def with_branches(directory: str, rounds: list[dict]) -> list[dict]:
    """The rounds with the run's branch results joined in: controls run later
    (``keras-lottery branch``) become extra ``baselines`` (named by their kind,
    ``<kind>_branch`` when IMP trained that control itself, ``_s<seed>`` for
    seeds other than 0), tickets retrained with tweaks (``keras-lottery
    retrain``) become ``retrain:<tweaks>`` baselines, and instability analyses
    add an ``instability`` entry (``{split: {mean, std, ...}}``)."""
    from keras_lottery.runs.retrain import column_name, load_retrains

    branches, analyses = load_branches(directory), load_instability(directory)
    retrains = load_retrains(directory)
    out = []
    for record in rounds:
        record = dict(record, baselines=dict(record.get("baselines", {})))
        own = set(record["baselines"])
        for branch in branches.get(record["round"], []):
            name = branch["kind"] + ("_branch" if branch["kind"] in own else "")
            name += f"_s{branch['seed']}" if branch["seed"] else ""
            record["baselines"][name] = branch["training"]
        for retrain in retrains.get(record["round"], []):
            record["baselines"][column_name(retrain)] = retrain["training"]
        if record["round"] in analyses:
            record["instability"] = analyses[record["round"]]["summary"]
        out.append(record)
    return out


def load_instability(directory: str) -> dict[int, dict]:
    """``{round: instability.json}`` of every analyzed round of a run folder."""
    from keras_lottery.runs.branches import verify_branch

    out = {}
    for path in paths.all_instability_jsons(directory):
        verify_branch(directory, os.path.dirname(path))
        data = read_json(path, "an instability.json of a run folder", ("round",))
        out[int(data["round"])] = data
    return out


def load_branches(directory: str) -> dict[int, list[dict]]:
    """``{round: [branch record, ...]}`` of every finished branch of a run folder."""
    from keras_lottery.runs.branches import verify_branch

    out: dict[int, list[dict]] = {}
    for path in paths.all_branch_records(directory):
        verify_branch(directory, os.path.dirname(path))
        data = read_json(
            path, "a branch record.json of a run folder", ("round", "kind", "training")
        )
        out.setdefault(int(data["round"]), []).append(data)
    return out


def write_report(directory: str, metric: str = "accuracy") -> str:
    """Writes ``report.txt`` and the method's figure into ``directory`` (and
    ``instability_vs_weights.png`` for analyzed rounds); returns the table."""
    method = registry.get(method_of(directory))
    result = summary(directory, branches=True)
    table = method.table(result, metric)
    atomic_write_text(paths.report(directory), table + "\n")
    method.plot(result, paths.plot(directory, method.plot_name))
    analyses = load_instability(directory)
    if analyses:
        from keras_lottery.runs.plots import plot_run_instability

        threshold = next(iter(analyses.values()))["threshold"]
        plot_run_instability(
            analyses, paths.plot(directory, paths.INSTABILITY_PLOT), threshold
        )
    return table
