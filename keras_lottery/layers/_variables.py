"""Saving and loading a layer's own variables in a fixed order (the
``save_own_variables``/``load_own_variables`` hooks of the masked layers)."""

from __future__ import annotations


def save_variables(store, variables) -> None:
    """``store["0"], store["1"], ...`` = ``variables`` in order."""
    for i, variable in enumerate(variables):
        store[str(i)] = variable


def load_variables(
    store, variables, layer_name: str, contents: str, hint: str = ""
) -> None:
    """Assigns ``store["0"], store["1"], ...`` to ``variables``; a store holding
    another number of entries is a ``ValueError`` naming the layer and what it
    expected (``contents``: e.g. ``"(kernel, bias if used, mask)"``), then
    ``hint``."""
    if len(store.keys()) != len(variables):
        message = (
            f"Layer '{layer_name}' expected {len(variables)} variables {contents} "
            f"but the saved file holds {len(store.keys())}."
        )
        raise ValueError(f"{message} {hint}" if hint else message)
    for i, variable in enumerate(variables):
        variable.assign(store[str(i)])
