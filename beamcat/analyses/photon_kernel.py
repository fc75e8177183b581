"""The photon-hit kernel on one frame (numba, ``nogil``) and its NumPy/scipy twin.

`detect_frame` finds the hits of one frame by the rules of `beamcat.analyses.photon`
(its module docstring describes the two methods, ``"maxima"`` and ``"original"``);
`detect_frame_reference` computes the same values another way (shifted stacks,
pointer jumping, ``scipy.ndimage.correlate``). `KERNELS` pairs them for the tests
and the benchmark.

Speed (what the kernel does per pixel): one pass over the frame, row by row, that
writes a 0/1 mask of the above-threshold pixels branch-free (the loop vectorises: a
frame of 2048 x 2048 uint16 is read in well under a millisecond); the masks are
then read 32 bytes at a time and only groups that hold a 1 are scanned. A uniform
dark level (a broadcast view, strides 0) is read as one number, a dark frame row
by row. Isolated above-threshold pixels whose hit would be rejected (read noise:
most of the above-threshold pixels of a sparse frame) are counted and left out
there. Everything after works on the remaining seeds only: each climbs to its
3 x 3 maximum, finds that maximum among the seeds of its row, and the maxima are
the hits.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.ndimage import correlate

__all__ = ["GROUP", "KERNELS", "detect_frame", "detect_frame_reference"]

#: mask bytes read at once (four 64-bit words) when looking for above-threshold pixels
GROUP = 32


@numba.njit(nogil=True, cache=True, inline="always")
def _signal(frame, background, level, uniform, y, x, original):  # pragma: no cover - numba
    """``frame - background`` at (y, x); NaN becomes 0 for the maxima method."""
    v = np.float64(frame[y, x]) - (level if uniform else background[y, x])
    if v != v and not original:
        return 0.0
    return v


@numba.njit(nogil=True, cache=True)
def _window_argmax(frame, background, level, uniform, y, x, original):  # pragma: no cover
    """Hottest pixel of the 3 x 3 window of (y, x) clipped to the frame, first in raster order.

    A NaN wins for the original method (numpy's argmax returns the first NaN).
    """
    ny, nx = frame.shape
    best, by, bx = -np.inf, y, x
    for yy in range(max(y - 1, 0), min(y + 2, ny)):
        for xx in range(max(x - 1, 0), min(x + 2, nx)):
            v = _signal(frame, background, level, uniform, yy, xx, original)
            if v != v:
                return yy, xx
            if v > best:
                best, by, bx = v, yy, xx
    return by, bx


@numba.njit(nogil=True, cache=True)
def _grow(a, size):  # pragma: no cover - numba
    """`a`, or a copy with room for `size` items (at least doubled)."""
    if size <= a.size:
        return a
    b = np.empty(max(size, 2 * a.size), a.dtype)
    b[: a.size] = a
    return b


@numba.njit(nogil=True, cache=True)
def _mask_row(frame, background, level, uniform, threshold, y, mask):  # pragma: no cover
    """``mask[x] = frame[y, x] - background[y, x] > threshold`` (branch-free: vectorises)."""
    row, dark = frame[y], background[y]
    if uniform:
        for x in range(row.size):
            mask[x] = np.float64(row[x]) - level > threshold
    else:
        for x in range(row.size):
            mask[x] = np.float64(row[x]) - dark[x] > threshold


@numba.njit(nogil=True, cache=True)
def _seeds(frame, background, level, uniform, threshold, energy_min, original):  # pragma: no cover
    """The above-threshold pixels that can matter, and how many pixels are above threshold.

    Returns the linear indices (raster order) of the seeds, where each row's start
    (``seeds[row_start[y]:row_start[y + 1]]``), and the count of all pixels with
    ``frame - background > threshold``. Left out are *isolated* pixels (no
    above-threshold neighbour) that cannot be a kept hit: no other pixel climbs
    to or through them, and alone in their box their hit is rejected exactly as
    `detect_frame` would (maxima: ``9 * s <= energy_min``; original: ``E = s -
    threshold <= energy_min``). On sparse frames that is almost all read noise.

    Rows are 0/1 byte masks (pixel x at byte x + 1, zero borders), the current one
    and its two neighbours; each is read `GROUP` bytes at a time as 64-bit words,
    and only groups holding a 1 are scanned for positions.
    """
    ny, nx = frame.shape
    size = ((nx + 2 + GROUP - 1) // GROUP) * GROUP  # bytes per mask row, whole groups
    masks = np.zeros(4 * size, np.uint8)  # rows y - 1, y, y + 1 in turn, and a zero row
    words = masks.view(np.uint64)
    zero = masks[3 * size : 4 * size]
    seeds = np.empty(max(ny * nx // 1024, 64), np.int64)
    row_start = np.empty(ny + 1, np.int64)
    n = n_over = 0
    if ny > 0:
        _mask_row(frame, background, level, uniform, threshold, 0, masks[1 : 1 + nx])
    for y in range(ny):
        row_start[y] = n
        slot = y % 3
        if y + 1 < ny:
            at = ((y + 1) % 3) * size + 1
            _mask_row(frame, background, level, uniform, threshold, y + 1, masks[at : at + nx])
        up = zero if y == 0 else masks[((y - 1) % 3) * size : ((y - 1) % 3 + 1) * size]
        down = zero if y + 1 == ny else masks[((y + 1) % 3) * size : ((y + 1) % 3 + 1) * size]
        here = masks[slot * size : (slot + 1) * size]
        seeds = _grow(seeds, n + nx)
        for g in range(size // GROUP):
            k = (slot * size + g * GROUP) // 8
            if words[k] | words[k + 1] | words[k + 2] | words[k + 3]:
                for b in range(g * GROUP, (g + 1) * GROUP):
                    if not here[b]:
                        continue
                    n_over += 1
                    x = b - 1
                    around = up[b - 1] | up[b] | up[b + 1] | here[b - 1] | here[b + 1]
                    if not (around | down[b - 1] | down[b] | down[b + 1]):
                        v = np.float64(frame[y, x]) - (level if uniform else background[y, x])
                        if (v - threshold if original else 9.0 * v) <= energy_min:
                            continue  # isolated, and its hit rejected
                    seeds[n] = y * nx + x
                    n += 1
    row_start[ny] = n
    return seeds[:n], row_start, n_over


@numba.njit(nogil=True, cache=True)
def _find(seeds, row_start, nx, y, x):  # pragma: no cover - numba
    """Index of pixel (y, x) among the `seeds` (looked for in its row only), or -1."""
    value = y * nx + x
    for i in range(row_start[y], row_start[y + 1]):
        if seeds[i] >= value:
            return i if seeds[i] == value else -1
    return -1


@numba.njit(nogil=True, cache=True)
def detect_frame(frame, background, threshold, energy_min, original):  # pragma: no cover
    """Hits of one frame (numba kernel, ``nogil``); see `beamcat.analyses.photon` for the methods.

    Parameters
    ----------
    frame : ndarray (ny, nx)
        Raw frame, any real dtype (read as it is, never converted or copied).
    background : ndarray (ny, nx) float64
        Dark level per pixel; a uniform level as a broadcast view (strides 0),
        which is read as one number.
    threshold, energy_min : float
        Pixels with ``frame - background > threshold`` belong to hits; hits with
        energy ``> energy_min`` are returned.
    original : bool
        The original's set-of-argmaxes rule instead of 3 x 3 maxima.

    Returns
    -------
    row, col : ndarray (n,) int64
        Hottest pixel of each hit, raster order.
    energy, y, x, peak : ndarray (n,) float64
        Box energy, centre of gravity, signal of the hottest pixel.
    pixels : ndarray (n,) int64
        Above-threshold pixels that joined the hit.
    n_over : int
        Above-threshold pixels in the frame.
    """
    ny, nx = frame.shape
    uniform = background.strides[0] == 0 and background.strides[1] == 0
    level = background[0, 0] if uniform and ny > 0 and nx > 0 else 0.0
    over, row_start, n_over = _seeds(
        frame, background, level, uniform, threshold, energy_min, original
    )
    # each seed's root: its 3 x 3 maximum (maxima: climbed to; original: one step), an
    # above-threshold pixel itself (its signal >= the seed's), so found among the seeds of
    # its row; a NaN root (original only) is not, and its hit's energy would be NaN: dropped
    members = np.zeros(over.size, np.int64)
    for i in range(over.size):
        y, x = over[i] // nx, over[i] % nx
        if original and (y == 0 or x == 0):
            continue  # the original's window frame[-1:2] is empty: first row/column never seed
        while True:
            py, px = _window_argmax(frame, background, level, uniform, y, x, original)
            if original or (py == y and px == x):
                break
            y, x = py, px
        root = i if py * nx + px == over[i] else _find(over, row_start, nx, py, px)
        if root >= 0:
            members[root] += 1
    hits = np.nonzero(members)[0]
    rows, cols = over[hits] // nx, over[hits] % nx
    out = np.empty((4, hits.size))  # energy, y, x, peak
    keep = np.zeros(hits.size, np.bool_)
    for h in range(hits.size):
        r, c = rows[h], cols[h]
        if original and (r == 0 or c == 0):
            continue  # empty window: E = 0, never above energy_min (> 0)
        peak = _signal(frame, background, level, uniform, r, c, original)
        if not original and 9.0 * peak <= energy_min:
            continue  # a maximum's box holds nothing above it: cannot pass (noise hits)
        e = sw = sy = sx = 0.0
        for yy in range(max(r - 1, 0), min(r + 2, ny)):
            for xx in range(max(c - 1, 0), min(c + 2, nx)):
                v = _signal(frame, background, level, uniform, yy, xx, original)
                if original:
                    v = v - threshold if v > threshold else (v if v != v else 0.0)
                w = v if original or v > 0 else 0.0
                e += v
                sw += w
                sy += w * yy
                sx += w * xx
        if e > energy_min:
            keep[h] = True
            out[0, h], out[1, h], out[2, h], out[3, h] = e, sy / sw, sx / sw, peak
    out = out[:, keep]
    return rows[keep], cols[keep], out[0], out[1], out[2], out[3], members[hits][keep], n_over


# --------------------------------------------------------------------------- NumPy twin

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # raster order


def _window_argmax_map(s: np.ndarray) -> np.ndarray:
    """Linear index of the hottest pixel of every pixel's 3 x 3 window (first in raster order)."""
    ny, nx = s.shape
    padded = np.pad(s, 1, constant_values=-np.inf)
    stack = np.stack([padded[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] for dy, dx in _OFFSETS])
    k = np.argmax(stack, axis=0)  # numpy: first maximum, or first NaN
    dy, dx = np.array(_OFFSETS).T
    rows, cols = np.indices(s.shape)
    return (rows + dy[k]) * nx + cols + dx[k]


def detect_frame_reference(
    frame: np.ndarray,
    background: np.ndarray,
    threshold: float,
    energy_min: float,
    original: bool,
) -> tuple:
    """NumPy/scipy twin of `detect_frame`: same arguments, same return values.

    Window argmaxes of all pixels from a stack of nine shifted frames; the maxima
    method climbs by pointer jumping; box sums by ``scipy.ndimage.correlate`` with
    a zero border (the box clipped to the frame).
    """
    ny, nx = frame.shape
    s = frame.astype(np.float64) - background
    over = s > threshold
    seeds = over.copy()
    if original:
        values = weights = np.where(over, s - threshold, np.where(np.isnan(s), s, 0.0))
        seeds[0, :] = seeds[:, 0] = False
        roots = _window_argmax_map(s)
    else:
        values = s = np.nan_to_num(s, nan=0.0, posinf=np.inf, neginf=-np.inf)
        weights = s.clip(min=0)
        roots = _window_argmax_map(s).ravel()
        while not np.array_equal(roots[roots], roots):
            roots = roots[roots]
    hits, pixels = np.unique(roots.ravel()[seeds.ravel()], return_counts=True)
    box = np.ones((3, 3))
    rows, cols = np.indices(s.shape)
    energy = correlate(values, box, mode="constant")
    sw = correlate(weights, box, mode="constant")
    sy = correlate(weights * rows, box, mode="constant")
    sx = correlate(weights * cols, box, mode="constant")
    r, c = hits // nx, hits % nx
    e = energy[r, c]
    if original:
        e = np.where((r == 0) | (c == 0), 0.0, e)
    keep = e > energy_min
    r, c, e = r[keep], c[keep], e[keep]
    return r, c, e, sy[r, c] / sw[r, c], sx[r, c] / sw[r, c], s[r, c], pixels[keep], int(over.sum())


#: kernel -> reference twin, for the tests and the benchmark
KERNELS = {detect_frame: detect_frame_reference}
