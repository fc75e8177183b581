"""Pixel -> bins tables for `beamcat.analyses.labels.table_sums`, and their numba accessors.

A table gives every detector pixel (``p = y * width + x``) its bins, in one of
three layouts, all pixel-major so that a frame streams through in memory order:

- a *label map*: one bin per pixel, fraction 1 (``bins`` ``(y*x,)``, -1:
  excluded; ``fractions`` the empty tuple). No pixel splitting, 4D-STEM radial
  bins of elliptical radius, ROIs.
- a *band*: each pixel's bins are consecutive, ``bins[p] .. bins[p] + W - 1``,
  with ``fractions[k][p]`` of the pixel in bin ``bins[p] + k`` (``bins``
  ``(y*x,)``, -1: excluded). Pixel splitting along one radial axis (pyFAI's
  "bbox" in 1D) always has this shape.
- *slots*: any bins, ``bins[k][p]`` with ``fractions[k][p]`` (``bins[0][p] =
  -1``: excluded). Splitting in two dims (caking), where a pixel's bins are a
  rectangle of the (chi, radial) grid.

Every pixel of a band or slot table has W entries, padded with fraction 0, held
as a tuple of W columns ``(y*x,)``. The kernel's inner loop then has a length
the compiler knows (a tuple's length is part of its type: one compiled kernel
per W, the loop unrolled): a CSR table's lengths of 3 or 4 entries cost a
mispredicted branch per pixel, and a run-time length half the speed. A padded
entry adds exactly nothing. `split_table` builds the band or slot table of a
pixel-major CSR table.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba.core import types
from numba.extending import overload

__all__ = [
    "PixelTable",
    "bin_dtype",
    "label_table",
    "split_table",
    "table_entries",
    "without_pixels",
]


class PixelTable(NamedTuple):
    """Pixel -> bins: a label map, a band or slots (module docstring).

    Attributes
    ----------
    bins : ndarray (y*x,), or tuple of W of them, of int16 or int32 (`bin_dtype`)
    fractions : tuple of W ndarrays (y*x,) of float32; () for a label map
    n_bins : int
    flip : bool
        The table's source numbers the pixels bottom up (pyFAI with a PONI of
        Dioptas' view): for the one error model whose result depends on the
        order pixels arrive in a bin (``"azimuthal"``), the kernel reads the
        rows bottom up too. Pixels are ``y * width + x`` of the frames either way.
    """

    bins: np.ndarray | tuple[np.ndarray, ...]
    fractions: tuple[np.ndarray, ...]
    n_bins: int
    flip: bool = False


def bin_dtype(n_bins: int) -> np.dtype:
    """The smallest signed integer that holds bins ``-1 .. n_bins - 1`` (less memory to stream)."""
    return np.dtype(np.int16 if n_bins < 2**15 else np.int32)


def label_table(labels, n_bins: int, *, flip: bool = False) -> PixelTable:
    """The `PixelTable` of a label map ``(y, x)`` (bins ``0 .. n_bins - 1``, -1 excluded)."""
    bins = np.ascontiguousarray(np.asarray(labels).ravel(), dtype=bin_dtype(n_bins))
    return PixelTable(bins, (), int(n_bins), flip)


def _columns(values: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(values[:, k]) for k in range(values.shape[1]))


def split_table(indptr, bins, fractions, n_bins: int, *, flip: bool = False) -> PixelTable:
    """The band (consecutive bins per pixel) or slot table of a pixel-major CSR table.

    Pixel p's entries are ``indptr[p]:indptr[p + 1]`` with bins `bins` and
    fractions `fractions`. A pixel without entries is excluded.
    """
    indptr = np.asarray(indptr, np.int64)
    bins, fractions = np.asarray(bins, np.int64), np.asarray(fractions, np.float32)
    counts = np.diff(indptr)
    width = max(int(counts.max(initial=0)), 1)
    pixel = np.repeat(np.arange(counts.size), counts)
    slot = np.arange(bins.size) - indptr[pixel]  # entry's place within its pixel
    used = counts > 0
    start = bins[indptr[:-1][used]]
    consecutive = np.array_equal(bins, np.repeat(start, counts[used]) + slot)
    dtype = bin_dtype(n_bins)
    out = np.zeros((counts.size, width), np.float32)
    if consecutive and width <= n_bins:
        # a band ending past the last bin starts earlier, its fractions shifted right
        first = np.full(counts.size, -1, np.int64)
        first[used] = np.minimum(start, n_bins - width)
        out[pixel, bins - first[pixel]] = fractions
        return PixelTable(first.astype(dtype), _columns(out), int(n_bins), flip)
    slots = np.full((counts.size, width), -1, np.int64)
    slots[pixel, slot] = bins
    slots[used] = np.where(slots[used] < 0, slots[used, :1], slots[used])  # pad: first bin, c = 0
    out[pixel, slot] = fractions
    return PixelTable(_columns(slots.astype(dtype)), _columns(out), int(n_bins), flip)


def without_pixels(table: PixelTable, drop) -> PixelTable:
    """`table` with the pixels where `drop` (bool ``(y*x,)``) is True excluded."""
    if not np.any(drop):
        return table
    first = (table.bins if isinstance(table.bins, np.ndarray) else table.bins[0]).copy()
    first[drop] = -1
    bins = first if isinstance(table.bins, np.ndarray) else (first, *table.bins[1:])
    return table._replace(bins=bins)


def table_entries(table: PixelTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel, bin, fraction) of every entry of `table`, padding included (float64 fractions)."""
    if not table.fractions:
        pixel = np.flatnonzero(table.bins >= 0)
        return pixel, table.bins[pixel].astype(np.int64), np.ones(pixel.size)
    band = isinstance(table.bins, np.ndarray)
    first = table.bins if band else table.bins[0]
    kept = np.flatnonzero(first >= 0)
    width = len(table.fractions)
    pixel = np.repeat(kept, width)
    slot = np.tile(np.arange(width), kept.size)
    fractions = np.stack(table.fractions, axis=1)[kept].ravel()
    if band:
        entry = first[pixel].astype(np.int64) + slot
    else:
        entry = np.stack(table.bins, axis=1)[kept].ravel()
    return pixel, entry.astype(np.int64), fractions.astype(np.float64)


def first_bin(bins, p):  # pragma: no cover - replaced by the overload in numba code
    """Pixel p's first bin (-1: excluded), in numba code."""


def slot_bin(bins, p, k, first):  # pragma: no cover - replaced by the overload in numba code
    """The bin of pixel p's k-th entry (`first`: its first bin, already read), in numba code."""


def slot_fraction(fractions, p, k):  # pragma: no cover - replaced by the overload in numba code
    """The fraction of pixel p in its k-th entry's bin (1 for a label map), in numba code."""


@overload(first_bin, inline="always")
def _first_bin(bins, p):
    if isinstance(bins, types.Array):
        return lambda bins, p: bins[p]
    return lambda bins, p: bins[0][p]


@overload(slot_bin, inline="always")
def _slot_bin(bins, p, k, first):
    if isinstance(bins, types.Array):  # from the local `first`: bins[p] read again costs 25 %
        return lambda bins, p, k, first: first + k
    return lambda bins, p, k, first: bins[k][p]


@overload(slot_fraction, inline="always")
def _slot_fraction(fractions, p, k):
    if len(fractions) == 0:  # a label map: never called, but typed
        return lambda fractions, p, k: 1.0
    return lambda fractions, p, k: np.float64(fractions[k][p])
