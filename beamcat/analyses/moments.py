"""The shared reduction convention: count, mean and M2 per chunk, merged, then finalised.

Every statistic over many values that beamcat computes in pieces (ROI and grid
means over spatial tiles, calibrated means, masters and accumulated images over
chunks of frames) follows one convention, as flox's aggregations and LiberTEM's
UDFs (``process_tile`` / ``merge`` / ``get_results``) do:

- **chunk**: each piece gives ``(..., 3)`` partials ``count, mean, M2`` (`STATS`;
  M2 the sum of squared deviations from the piece's mean, exact in float64), or,
  for plain sums, a float64/int64 partial sum (`frame_sums`);
- **combine**: partials merge exactly, in any grouping (`merge`, Chan et al.;
  `add_sums`);
- **finalise**: ``mean, std (ddof=0), count`` with NaN where nothing was counted
  (`finalise`), or a sum divided by the number of frames.

`combine` is the merge-then-finalise step the ROI kernels' tasks end with, and
`sum_frames` the dask tree reduction of frame sums that masters and
`accumulate` share.

Examples
--------
>>> a, b = np.array([[2.0, 1.5, 0.5]]), np.array([[1.0, 4.0, 0.0]])  # count, mean, M2
>>> combine(a, b).tolist()  # the values 1, 2, 4: mean 7/3, std sqrt(14/9)
[[2.3333333333333335, 1.247219128924647, 3.0]]
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np

__all__ = ["STATS", "add_sums", "combine", "finalise", "frame_sums", "merge", "sum_frames"]

#: partials per region: count, mean, M2 (sum of squared deviations from the mean);
#: after `finalise`: mean, std, count
STATS = 3


def merge(parts: np.ndarray, axis: int = -2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan et al.: partials ``(..., pieces, ..., 3)`` merged along `axis` -> count, mean, M2.

    The partials of the pieces merge exactly: N = sum n, mean = sum(n m) / N,
    M2 = sum M2 + sum n (m - mean)^2. `axis` counts the dims of ``parts[..., 0]``.
    """
    n, mean, m2 = parts[..., 0], parts[..., 1], parts[..., 2]
    total = n.sum(axis=axis)
    grand = (n * mean).sum(axis=axis) / np.maximum(total, 1)
    spread = (n * (mean - np.expand_dims(grand, axis)) ** 2).sum(axis=axis)
    return total, grand, m2.sum(axis=axis) + spread


def finalise(count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """``(..., 3)`` mean, std (ddof=0), count; mean and std NaN where count is 0."""
    empty = count == 0
    std = (m2 / np.maximum(count, 1)) ** 0.5
    return np.stack([np.where(empty, np.nan, mean), np.where(empty, np.nan, std), count], -1)


def combine(*parts: np.ndarray) -> np.ndarray:
    """Partials ``(..., k, 3)`` of pieces of the same regions -> finalised ``(..., k, 3)``.

    One piece is finalised as it is (nothing to merge).
    """
    if len(parts) == 1:
        return finalise(parts[0][..., 0], parts[0][..., 1], parts[0][..., 2])
    return finalise(*merge(np.stack(parts, axis=-3)))


def frame_sums(block: np.ndarray, axis, keepdims, dtype=np.float64) -> np.ndarray:
    """Reduction chunk step: the sum of a block's frames along `axis`, kept as a length-1 axis.

    Frame by frame into a `dtype` total: numpy's ``sum(axis, dtype=float64)``
    of integers is several times slower (a buffered cast over the whole block),
    and adding frames in order gives the numbers NumPy's sum over an outer axis
    gives.
    """
    (axis,) = np.atleast_1d(axis)
    frames = np.moveaxis(block, axis, 0)
    total = np.zeros((1, *frames.shape[1:]), dtype)
    for frame in frames:
        np.add(total[0], frame, out=total[0], casting="unsafe")
    return np.moveaxis(total, 0, axis)


def add_sums(parts, axis, keepdims) -> np.ndarray:
    """Reduction combine step: partial sums added in order (no concatenation of them first)."""
    (axis,) = np.atleast_1d(axis)
    total = functools.reduce(np.add, parts if isinstance(parts, list) else [parts])
    return total if keepdims else np.squeeze(total, axis)


def sum_frames(data, axis: int = 0, dtype=np.float64):
    """Sum of `data` (NumPy or dask) along `axis` in `dtype`: a tree of `frame_sums`.

    Memory is bounded by a chunk and a few partial sums, however many frames.
    """
    axis = axis % data.ndim
    step = functools.partial(frame_sums, dtype=np.dtype(dtype))
    if not isinstance(data, da.Array):
        return step(np.asarray(data), (axis,), False)[(slice(None),) * axis + (0,)]
    return da.reduction(
        data,
        step,
        add_sums,
        combine=add_sums,
        axis=axis,
        keepdims=False,
        dtype=np.dtype(dtype),
        concatenate=False,
    )
