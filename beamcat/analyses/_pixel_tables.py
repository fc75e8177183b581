"""Pixel -> bins tables for `beamcat.analyses.labels.table_sums`, and their numba accessors.

A table gives every detector pixel (``p = y * width + x``) its bins, in one of
three layouts, all pixel-major so that a frame streams through in memory order:

- a *label map*: one bin per pixel, fraction 1 (``bins`` ``(y*x,)``, -1:
  excluded; ``fractions`` empty). No pixel splitting, 4D-STEM radial bins, ROIs.
- a *band*: each pixel's bins are consecutive, ``bins[p] .. bins[p] + W - 1``,
  with ``fractions[p, k]`` of the pixel in bin ``bins[p] + k`` (``bins``
  ``(y*x,)``, -1: excluded; ``fractions`` ``(y*x, W)``). Pixel splitting along
  one radial axis (pyFAI's "bbox" in 1D) always has this shape.
- *slots*: any bins, ``bins[p, k]`` with ``fractions[p, k]`` (``bins`` and
  ``fractions`` ``(y*x, W)``; ``bins[p, 0] = -1``: excluded). Splitting in two
  dims (caking), where a pixel's bins are a rectangle of the (chi, radial) grid.

Every pixel of a band or slot table has W entries, padded with fraction 0: the
kernel's inner loop then has a fixed length (a CSR table's lengths of 3 or 4
entries cost a mispredicted branch per pixel, half the run time) and a padded
entry adds exactly nothing. `split_table` builds the band or slot table of a
pixel-major CSR table.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
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
    bins : ndarray (y*x,) or (y*x, W) of int16 or int32 (`bin_dtype`)
    fractions : ndarray (y*x, W) of float32; (0, 0) for a label map
    n_bins : int
    flip : bool
        The table's source numbers the pixels bottom up (pyFAI with a PONI of
        Dioptas' view): for the one error model whose result depends on the
        order pixels arrive in a bin (``"azimuthal"``), the kernel reads the
        rows bottom up too. Pixels are ``y * width + x`` of the frames either way.
    """

    bins: np.ndarray
    fractions: np.ndarray
    n_bins: int
    flip: bool = False


def bin_dtype(n_bins: int) -> np.dtype:
    """The smallest signed integer that holds bins ``-1 .. n_bins - 1`` (less memory to stream)."""
    return np.dtype(np.int16 if n_bins < 2**15 else np.int32)


def label_table(labels, n_bins: int, *, flip: bool = False) -> PixelTable:
    """The `PixelTable` of a label map ``(y, x)`` (bins ``0 .. n_bins - 1``, -1 excluded)."""
    bins = np.ascontiguousarray(np.asarray(labels).ravel(), dtype=bin_dtype(n_bins))
    return PixelTable(bins, np.empty((0, 0), np.float32), int(n_bins), flip)


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
    start = bins[indptr[:-1][counts > 0]]
    consecutive = np.array_equal(bins, np.repeat(start, counts[counts > 0]) + slot)
    dtype = bin_dtype(n_bins)
    out = np.zeros((counts.size, width), np.float32)
    if consecutive and width <= n_bins:
        # a band ending past the last bin starts earlier, its fractions shifted right
        first = np.full(counts.size, -1, np.int64)
        first[counts > 0] = np.minimum(start, n_bins - width)
        out[pixel, bins - first[pixel]] = fractions
        return PixelTable(first.astype(dtype), out, int(n_bins), flip)
    slots = np.full((counts.size, width), -1, np.int64)
    slots[pixel, slot] = bins
    used = counts > 0
    slots[used] = np.where(slots[used] < 0, slots[used, :1], slots[used])  # pad: first bin, c = 0
    out[pixel, slot] = fractions
    return PixelTable(slots.astype(dtype), out, int(n_bins), flip)


def without_pixels(table: PixelTable, drop) -> PixelTable:
    """`table` with the pixels where `drop` (bool ``(y*x,)``) is True excluded."""
    if not np.any(drop):
        return table
    bins = table.bins.copy()
    if bins.ndim == 1:
        bins[drop] = -1
    else:
        bins[drop, 0] = -1
    return table._replace(bins=bins)


def table_entries(table: PixelTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel, bin, fraction) of every entry of `table`, padding included (float64 fractions)."""
    bins, fractions = table.bins, table.fractions
    if fractions.size == 0:
        pixel = np.flatnonzero(bins >= 0)
        return pixel, bins[pixel].astype(np.int64), np.ones(pixel.size)
    first = bins if bins.ndim == 1 else bins[:, 0]
    pixel = np.repeat(np.flatnonzero(first >= 0), fractions.shape[1])
    slot = np.tile(np.arange(fractions.shape[1]), pixel.size // max(fractions.shape[1], 1))
    entry = bins[pixel] + slot if bins.ndim == 1 else bins[pixel, slot]
    return pixel, entry.astype(np.int64), fractions[pixel, slot].astype(np.float64)


def first_bin(bins, p):  # pragma: no cover - replaced by the overload in numba code
    """Pixel p's first bin (-1: excluded), in numba code."""


def slot_bin(bins, p, k, first):  # pragma: no cover - replaced by the overload in numba code
    """The bin of pixel p's k-th entry (`first`: its first bin, already read), in numba code."""


@overload(first_bin, inline="always")
def _first_bin(bins, p):
    if bins.ndim == 1:
        return lambda bins, p: bins[p]
    return lambda bins, p: bins[p, 0]


@overload(slot_bin, inline="always")
def _slot_bin(bins, p, k, first):
    if bins.ndim == 1:  # from the local `first`: bins[p] read again per entry costs 25 %
        return lambda bins, p, k, first: first + k
    return lambda bins, p, k, first: bins[p, k]
