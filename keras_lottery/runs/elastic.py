"""Elastic runs: a saved IMP round's ticket transformed to another depth
(:mod:`keras_lottery.elastic`) and trained with the source run's recipe from
the rewind step ``k``, with any controls, in a resumable hash-named folder.

The folder ``<out>/elastic_<hash>/`` (names in :mod:`keras_lottery.paths`; the
hash covers the source run, round, target, block map and seed)::

    elastic.json                  the request (written first)
    ticket.npz                    the transformed ticket
    arms/<arm>/record.json        one per trained arm: ``ticket`` and controls
    instability/                  ``keras-lottery instability`` of the ticket
    report.txt                    keras-lottery report
    result.json                   written last, when every requested arm is done

Running the same request again trains only the arms without a record; asking
for more controls later adds them to the same folder.

Example:

>>> directory = run_elastic("runs/imp_3f2a9c1d0b7e", round=5,
...                         target="cifar_resnet_32", controls=["permute_copies"])
>>> print(write_elastic_report(directory))
>>> run_elastic_instability(directory, pairs=2)["summary"]["test"]["mean"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable

import keras

from keras_lottery import analysis, elastic, paths, pruning
from keras_lottery import controls as control_registry
from keras_lottery._io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_leftover_temps,
)
from keras_lottery._messages import print_msg
from keras_lottery.config import RunConfig
from keras_lottery.config.parsing import apply_overrides, from_dict
from keras_lottery.errors import ConfigError
from keras_lottery.manifest import record_bytes, write_manifest
from keras_lottery.recipes import Recipe
from keras_lottery.runs import plots
from keras_lottery.runs.branches import load_round, load_teacher
from keras_lottery.runs.locking import run_folder_lock
from keras_lottery.ticket import Ticket
from keras_lottery.training import metric_of, train_from_step

TICKET_ARM = "ticket"


def target_config(config: RunConfig, target: str) -> RunConfig:
    """The source run's config with the model replaced by ``target`` (builder
    options the target does not take, like ``depth``, dropped)."""
    from keras_lottery import models

    if target not in models.names():
        raise ConfigError(
            f"Unknown target model {target!r}; registered models: {models.names()}."
        )
    options = elastic.carried_options(config.model.options, target)
    model = dataclasses.replace(config.model, name=target, options=options)
    return dataclasses.replace(config, model=model)


def elastic_hashname(spec: dict) -> str:
    canonical = json.dumps(spec, sort_keys=True, default=str)
    return "elastic_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def run_elastic(
    run_dir: str,
    round: int,
    target: str,
    strategy: str | None = None,
    mapping: str | None = None,
    out: str = "runs",
    controls: Iterable[str] = (),
    seed: int = 0,
    verbose: int = 1,
    recipe_factory: Callable[[RunConfig], Recipe] = Recipe,
) -> str:
    """Transforms round ``round`` of the IMP run ``run_dir`` to ``target``
    (``strategy`` or ``mapping``, see :func:`keras_lottery.elastic.transform`)
    and trains it and each of ``controls`` from the rewind step with the run's
    recipe; returns the elastic run folder. ``recipe_factory`` builds the
    recipe from the target config (e.g. a recipe feeding NumPy batches).
    Raises :class:`ConfigError` before writing anything for a bad request."""
    controls = list(dict.fromkeys(controls))
    for kind in controls:
        control_registry.get(kind)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0; got {seed!r}.")
    saved = load_round(run_dir, round)
    if round == 0:
        raise ConfigError(
            "Round 0 is the dense network: transform a pruned round (>= 1)."
        )
    config = target_config(saved.config, target)
    source_model = None
    if not saved.ticket.metadata.get("topology"):
        keras.utils.set_random_seed(saved.config.seed)  # older tickets
        source_model = Recipe(saved.config).build_model()
    ticket = elastic.transform(
        saved.ticket, target, strategy=strategy, mapping=mapping, source=source_model
    )
    spec = {
        "source_run": os.path.basename(os.path.normpath(run_dir)),
        "source_config": saved.config.hashname(),
        "round": round,
        "target": target,
        "map": ticket.metadata["elastic"]["map"],
        "seed": seed,
    }
    recipe = recipe_factory(config)
    plan = recipe.retrain_plan()  # the source run's retrain tweaks
    if plan:  # misfits before anything is written
        keras.utils.set_random_seed(saved.config.seed)
        plan.check(recipe.build_model(), has_teacher=True)
    directory = paths.run_dir(out, elastic_hashname(spec))
    os.makedirs(directory, exist_ok=True)
    spec_path = paths.elastic_spec(directory)
    if not os.path.exists(spec_path):
        atomic_write_json(
            spec_path,
            {
                **spec,
                "source_dir": os.path.abspath(run_dir),
                "strategy": ticket.metadata["elastic"]["strategy"],
                "source_fraction_remaining": saved.record["fraction_remaining"],
                "source_training": saved.record.get("ticket"),
                "config": config.to_dict(),
            },
        )
    if not os.path.exists(paths.elastic_ticket(directory)):
        ticket.save(paths.elastic_ticket(directory))
    ticket = Ticket.load(paths.elastic_ticket(directory))
    start = int(ticket.metadata.get("rewind_iterations", 0) or 0)

    def teacher():  # KD: the source run's dense network teaches the target
        return load_teacher(run_dir, Recipe(saved.config))

    for arm in [TICKET_ARM, *controls]:
        _train_arm(directory, arm, ticket, recipe, start, saved, spec, verbose, teacher)
    write_elastic_report(directory)
    done = arm_records(directory)
    if all(arm in done for arm in [TICKET_ARM, *controls]):
        atomic_write_json(paths.result(directory), summarize(directory))
    return directory


def _train_arm(directory, arm, ticket, recipe, start, saved, spec, verbose, teacher):
    source_config = saved.config
    path = paths.elastic_arm_record(directory, arm)
    if os.path.exists(path):
        if verbose:
            print_msg(f"[keras_lottery] {path} exists; skipping {arm}.")
        return
    if arm == TICKET_ARM:  # the values come from the ticket: only data order
        random_seed = source_config.seed + spec["seed"]
    else:
        random_seed = control_registry.branch_seed(
            source_config.seed, spec["round"], arm, spec["seed"]
        )
    if arm == TICKET_ARM:
        keras.utils.set_random_seed(random_seed)
        model = recipe.build_model()
        ticket.apply(model)
    else:
        model = control_registry.control_model(
            arm, ticket, recipe.build_model, random_seed
        )
    recipe.compile(model)
    keras.utils.set_random_seed(random_seed)
    # Replicate seed 0 trains on the source run's data order; others shift it.
    order_seed = None
    if spec["seed"]:
        order_seed = recipe.default_order_seed() + spec["seed"]
    plan = recipe.retrain_plan()
    prepared = plan.prepare(model, model.get_compile_config(), teacher)
    record = train_from_step(
        prepared.trainee,
        start,
        compile_config=prepared.compile_config,
        test_data=recipe.test_data,
        keep_best=recipe.config.pruning.evaluate_at == "best",
        callbacks=prepared.callbacks,
        **recipe.fit_kwargs(order_seed=order_seed, verbose=2 if verbose > 1 else 0),
    )
    plan.finish(prepared, model)
    report = pruning.sparsity_report(model)
    atomic_write_json(
        path,
        {
            "arm": arm,
            "seed": spec["seed"],
            "start_step": start,
            "steps_per_epoch": recipe.steps_per_epoch,
            "fraction_remaining": report.fraction_remaining,
            "layers_remaining": report.layers_remaining,
            "training": dataclasses.asdict(record),
        },
    )
    if verbose:
        print_msg(
            f"[keras_lottery] elastic {spec['target']} {arm}: {record.summary()}, "
            f"{100 * report.fraction_remaining:.2f}% weights"
        )


# ----------------------------------------------------------------- instability


def run_elastic_instability(
    directory: str,
    overrides: Iterable[str] = (),
    verbose: int = 1,
    wait: bool = False,
    recipe_factory: Callable[[RunConfig], Recipe] = Recipe,
    **settings,
) -> dict:
    """Instability of an elastic run's transformed ticket at its rewind step
    (the source's ``k``), with the target recipe; resumable like
    :func:`keras_lottery.runs.branches.run_instability`.

    ``settings`` (``pairs``, ``points``, ...) and ``overrides``
    (``"stability.points=11"``, only ``stability.*``) replace the target
    config's ``stability`` section. Writes ``instability/{instability.json,
    instability.png}`` and keeps each trained copy under ``instability/copies/``.

    >>> run_elastic_instability("runs/elastic_0c1d2e3f4a5b", pairs=1)["summary"]
    """
    spec = _read_spec(directory)
    overrides = list(overrides)
    bad = [o for o in overrides if not o.strip().startswith("stability.")]
    if bad:
        raise ConfigError(
            "Only stability.* settings can be overridden for an elastic run (its "
            f"recipe is the source run's); got {bad}."
        )
    config = from_dict(apply_overrides(dict(spec["config"]), overrides))
    with run_folder_lock(directory, wait=wait):
        remove_leftover_temps(directory)
        ticket = Ticket.load(paths.elastic_ticket(directory))
        start = int(ticket.metadata.get("rewind_iterations", 0) or 0)
        fraction = 1.0 - ticket.sparsity
        if verbose:
            print_msg(
                f"[keras_lottery] instability of the elastic ticket {spec['target']} "
                f"({100 * fraction:.2f}% weights remaining) from step {start} of "
                f"{directory}"
            )
        result = analysis.instability(
            ticket,
            recipe_factory(config),
            start_step=start,
            settings=analysis.settings_with(config.stability, settings),
            cache_dir=paths.elastic_instability_copies(directory),
            verbose=verbose,
        )
        summary = {
            "run_dir": os.path.abspath(directory),
            "target": spec["target"],
            "map": spec["map"],
            "fraction_remaining": fraction,
            "rewind": ticket.metadata.get("rewind"),
            **result.to_dict(),
        }
        data = record_bytes(summary)
        write_manifest(
            paths.elastic_instability_dir(directory), [], {"instability.json": data}
        )
        atomic_write_bytes(paths.elastic_instability_json(directory), data)
        plots.plot_instability(
            summary,
            paths.elastic_instability_plot(directory),
            title=f"elastic {spec['target']}, {100 * fraction:.1f}% weights, "
            f"k = {summary['rewind']}",
        )
    return summary


# ----------------------------------------------------------------- reading


def is_elastic_run(directory: str) -> bool:
    return os.path.exists(paths.elastic_spec(directory))


def arm_records(directory: str) -> dict[str, dict]:
    """``{arm: record}`` of the finished arms of an elastic run folder."""
    out = {}
    for path in paths.all_elastic_arm_records(directory):
        with open(path) as handle:
            record = json.load(handle)
        out[record["arm"]] = record
    return out


def summarize(directory: str, metric: str = "accuracy") -> dict:
    """The request and, per finished arm, weights remaining, ``metric`` and
    epochs trained (from ``k``)."""
    spec = _read_spec(directory)
    arms = {}
    for arm, record in arm_records(directory).items():
        training = record["training"]
        steps = training.get("steps") or 0
        arms[arm] = {
            "fraction_remaining": record["fraction_remaining"],
            metric: metric_of(training, metric),
            "epochs": steps / max(1, record.get("steps_per_epoch") or 1),
            "wall_time": training.get("wall_time"),
        }
    result = {"spec": {k: v for k, v in spec.items() if k != "config"}, "arms": arms}
    path = paths.elastic_instability_json(directory)
    if os.path.exists(path):
        with open(path) as handle:
            instability = json.load(handle)
        result["instability"] = instability["summary"]
    return result


def _read_spec(directory: str) -> dict:
    if not is_elastic_run(directory):
        raise FileNotFoundError(
            f"{directory} is not an elastic run folder (no "
            f"{os.path.basename(paths.elastic_spec(directory))})."
        )
    with open(paths.elastic_spec(directory)) as handle:
        return json.load(handle)


def format_table(result: dict, metric: str = "accuracy") -> str:
    spec = result["spec"]
    lines = [
        f"Elastic ticket: {spec['source_run']} round {spec['round']} -> "
        f"{spec['target']} (map {spec['map']}, "
        f"strategy {spec.get('strategy') or 'explicit map'}, seed {spec['seed']})",
        f"{'arm':<18}{'weights':>10}{metric:>12}{'epochs':>9}",
    ]
    for arm, row in result["arms"].items():
        value = row.get(metric)
        shown = "-" if value is None else f"{value:.4f}"
        lines.append(
            f"{arm:<18}{100 * row['fraction_remaining']:>9.2f}%{shown:>12}"
            f"{row['epochs']:>9.1f}"
        )
    for split, stats in (result.get("instability") or {}).items():
        verdict = "stable" if stats["stable"] else "unstable"
        lines.append(
            f"instability of the ticket at k ({split}): {100 * stats['mean']:.2f} "
            f"± {100 * stats['std']:.2f} pp -> {verdict}"
        )
    return "\n".join(lines)


def write_elastic_report(directory: str, metric: str = "accuracy") -> str:
    """Writes ``report.txt`` of an elastic run folder; returns the table."""
    table = format_table(summarize(directory, metric), metric)
    atomic_write_text(paths.report(directory), table + "\n")
    return table


def points(directory: str, metric: str = "accuracy") -> list[dict]:
    """One point per finished arm (``phase`` = the arm), for comparisons with
    IMP runs on the accuracy-vs-weights plot; ``epochs`` counts only the
    target's training (the source's IMP epochs are not included)."""
    result = summarize(directory, metric)
    return [
        {
            "phase": arm,
            "weights_remaining": row["fraction_remaining"],
            "accuracy": row[metric],
            "epochs": row["epochs"],
        }
        for arm, row in result["arms"].items()
    ]
