"""Structured sparsity for magnitude pruning: blocks and N:M groups.

Runtimes accelerate structured patterns, not scattered zeros. Each kernel is
viewed as a matrix ``(reduction, outputs)``: a Dense kernel as it is, a
convolution kernel ``(h, w, in, out)`` as ``(h * w * in, out)`` (input channels
vary fastest along the rows).

- ``"RxC"`` (e.g. ``"1x4"``, ``"4x1"``, ``"2x2"``): whole ``R x C`` blocks are kept
  or pruned, ranked by their mean magnitude; a pool keeps
  ``round(density * blocks)`` blocks, so counts are exact in blocks (and in
  weights: ``R * C`` per block). The matrix must divide into blocks exactly.
- ``"N:M"`` (e.g. ``"2:4"``): in every group of ``M`` consecutive weights along
  the reduction axis, only the ``N`` largest survive (NVIDIA's 2:4 sparse tensor
  cores). The density is ``N / M`` by construction, so a schedule sets *when*
  the pattern is applied, not how much (as in tfmot's ``sparsity_m_by_n``).

Masks stay ``bool`` and only shrink; ties go to the lower index, as in
unstructured pruning.

Example:

>>> prune_to_density(model, 0.5, pattern="1x4", scope="layerwise")
>>> prune_to_density(model, 0.5, pattern="2:4")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from keras import ops

from keras_lottery.errors import ConfigError

_BLOCK = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_N_OF_M = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern: ``kind`` is ``"block"`` (``a x b`` blocks) or ``"n:m"``
    (``a`` kept of every ``b``)."""

    kind: str
    a: int
    b: int

    def __str__(self):
        return f"{self.a}x{self.b}" if self.kind == "block" else f"{self.a}:{self.b}"


def parse_pattern(text) -> Pattern:
    """``"1x4"`` -> block pattern, ``"2:4"`` -> N:M pattern; a ``ConfigError``
    for anything else.

    >>> parse_pattern("2:4")
    Pattern(kind='n:m', a=2, b=4)
    """
    if isinstance(text, Pattern):
        return text
    text = str(text)
    block, n_of_m = _BLOCK.match(text), _N_OF_M.match(text)
    if block and int(block.group(1)) >= 1 and int(block.group(2)) >= 1:
        return Pattern("block", int(block.group(1)), int(block.group(2)))
    if n_of_m and 1 <= int(n_of_m.group(1)) <= int(n_of_m.group(2)):
        return Pattern("n:m", int(n_of_m.group(1)), int(n_of_m.group(2)))
    raise ConfigError(
        f"Invalid sparsity pattern {text!r}: write blocks as 'RxC' (e.g. '1x4', "
        "'4x1') or N of every M weights as 'N:M' (e.g. '2:4', N <= M)."
    )


def matrix_view(kernel: np.ndarray) -> np.ndarray:
    """The kernel as ``(reduction, outputs)``: all axes but the last flattened."""
    return kernel.reshape(-1, kernel.shape[-1]) if kernel.ndim > 1 else kernel[:, None]


def pool_masks(layers, value: float, count, pattern, drop_smallest) -> dict:
    """Masks of one pool of ``layers`` under ``pattern``.

    ``count(alive, total, value)`` is the pool's number of *units* (blocks) to
    prune, as in ``pruning.magnitude_masks_to_density``; ``drop_smallest`` is
    ``pruning._drop_smallest``.
    """
    pattern = parse_pattern(pattern)
    if pattern.kind == "n:m":
        return {layer.name: _n_of_m_mask(layer, pattern) for layer in layers}
    scores, alive, sizes = [], [], []
    for layer in layers:
        s, a = _block_scores(layer, pattern)
        scores.append(s.ravel())
        alive.append(a.ravel())
        sizes.append(s.size)
    flat_alive = np.concatenate(alive)
    n_prune = count(int(flat_alive.sum()), flat_alive.size, value)
    kept = drop_smallest(np.concatenate(scores), flat_alive, n_prune)
    offsets = np.cumsum([0] + sizes)
    masks = {}
    for i, layer in enumerate(layers):
        blocks = kept[offsets[i] : offsets[i + 1]]
        masks[layer.name] = _expand_blocks(layer, blocks, pattern)
    return masks


def _arrays(layer):
    kernel = np.asarray(ops.convert_to_numpy(layer.raw_kernel))
    return matrix_view(np.abs(kernel)), matrix_view(layer.get_mask())


def _block_scores(layer, pattern):
    weights, mask = _arrays(layer)
    rows, cols = weights.shape
    r, c = pattern.a, pattern.b
    if rows % r or cols % c:
        raise ConfigError(
            f"Layer '{layer.name}': its kernel as a ({rows}, {cols}) matrix does not "
            f"divide into {pattern} blocks; exclude it or pick a block shape that "
            "divides it."
        )
    shape = (rows // r, r, cols // c, c)
    scores = weights.reshape(shape).mean(axis=(1, 3))
    # A block is alive while any of its weights is (masks only shrink).
    alive = mask.reshape(shape).any(axis=(1, 3))
    return scores, alive


def _expand_blocks(layer, blocks, pattern):
    _, mask = _arrays(layer)
    rows, cols = mask.shape
    grid = blocks.reshape(rows // pattern.a, cols // pattern.b)
    full = np.repeat(np.repeat(grid, pattern.a, axis=0), pattern.b, axis=1)
    return (full & mask).reshape(layer.get_mask().shape)


def _n_of_m_mask(layer, pattern):
    weights, mask = _arrays(layer)
    rows, cols = weights.shape
    n, m = pattern.a, pattern.b
    if rows % m:
        raise ConfigError(
            f"Layer '{layer.name}': its reduction axis has {rows} weights per output, "
            f"not a multiple of M={m} for the {pattern} pattern; exclude it."
        )
    # Groups of m consecutive rows, one group per (row block, column).
    groups = weights.reshape(rows // m, m, cols).transpose(0, 2, 1).reshape(-1, m)
    alive = mask.reshape(rows // m, m, cols).transpose(0, 2, 1).reshape(-1, m)
    scores = np.where(alive, groups, -np.inf)
    # Drop the m - n smallest (pruned ones first); a stable sort drops the
    # lower index first among ties, as unstructured pruning does.
    order = np.argsort(scores, axis=1, kind="stable")
    keep = alive.copy()
    np.put_along_axis(keep, order[:, : m - n], False, axis=1)
    out = keep.reshape(rows // m, cols, m).transpose(0, 2, 1).reshape(rows, cols)
    return out.reshape(layer.get_mask().shape)
