"""Ticket-finding methods by name (open_lth's ``pruning/registry.py``).

A method registers itself once, in its own module, with everything the rest of
the library needs from it: its config section, how a run prepares the model it
trains, its driver (built from the config), and how its run folder reads
(summary, curve points, table, figure). The runner, reports, sweeps,
comparisons and Keras Tuner dispatch through :func:`get`; none of them names a
method. A new method adds its config section to
:mod:`keras_lottery.config.sections` (``METHOD_SECTIONS`` and a field of
``RunConfig``) and one module here.

Example:

>>> method = registry.get(config.method)
>>> model = method.prepare(config, recipe)
>>> method.driver.from_config(config, model, checkpoint_dir=d).run(model, ...)
>>> method.points(summary)     # [{"weights_remaining", "accuracy", ...}]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What the library needs from a ticket-finding method.

    Attributes:
        name: the ``method`` value of a config (also the run folders' prefix).
        driver: a class with ``from_config(config, model, *, checkpoint_dir,
            verbose, **options)`` and ``run(model, test_data=..., **fit_kwargs)``.
        prepare: ``(config, recipe, model) -> compiled model`` that a run
            trains, from ``model``, a freshly seeded registry model.
        summarize: ``run_dir -> dict``: what ``result.json`` holds besides the
            config (``{"method": name, ...}``), read from the phase folders.
        points: ``summary -> [point]``: the tickets of a run as curve points
            (``weights_remaining``, ``accuracy``, ``controls``, ``epochs`` spent
            to reach it, ``label``...).
        table: ``summary -> str``: the report table.
        plot: ``(summary, path) -> None``: the report figure, saved as
            ``plot_name`` in the run folder.
        driver_options: keyword options the runner may pass to ``from_config``
            besides the config (e.g. IMP's ``extra_rewinds``).
        preflight: ``(config, recipe, driver, model) -> None``: checks that
            need the data and the model (a rewind point inside training...),
            raising ``ConfigError`` before the runner creates the run folder
            (see :mod:`keras_lottery.methods.preflight`).
    """

    name: str
    driver: type
    prepare: Callable
    summarize: Callable
    points: Callable
    table: Callable
    plot: Callable
    plot_name: str
    driver_options: tuple[str, ...] = ()
    preflight: Callable | None = None


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Registers ``method`` under its name; its config section must exist."""
    from keras_lottery.config import METHOD_SECTIONS

    if method.name not in METHOD_SECTIONS:
        raise ValueError(
            f"Method {method.name!r} has no config section: add it to "
            "keras_lottery.config.sections.METHOD_SECTIONS and RunConfig."
        )
    if method.name in _METHODS:
        raise ValueError(f"Method {method.name!r} is already registered.")
    _METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    """The method registered as ``name``."""
    import keras_lottery.methods  # noqa: F401  (registers the built-in methods)

    if name not in _METHODS:
        raise ValueError(f"Unknown method {name!r}; registered: {sorted(_METHODS)}.")
    return _METHODS[name]


def names() -> list[str]:
    """The registered methods' names."""
    import keras_lottery.methods  # noqa: F401

    return sorted(_METHODS)
