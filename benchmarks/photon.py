"""Photon detection: the ``ds.photon.detect`` path vs the original FemtoMAX ``photonize``, same run.

Synthetic Balor-like frames, generated in memory (seeded): 2048 x 2048, dark level
100 ADU, read noise 3 ADU, ~1,000 photons of ~1250 ADU per frame shared over 3 x 3
pixels (the demo's charge cloud, `beamcat.catalog.demo.photon.deposit`), as uint16
and as float32. `--distinct` different frames are repeated to `--frames` in a
dask array chunked by `--chunk` frames (no memory beyond the distinct frames).

Rows of the table:

- ``ds.photon.detect``: the accessor path a user runs,
  ``ds.photon.detect(threshold=8, energy_min=1100).compute().photon.events()`` on
  dask's threaded scheduler with `--threads` workers (graph building, the
  per-chunk tasks and the event list included), for the default method (3 x 3
  maxima) and ``method="original"``; `--repeats` runs, the best and the median;
- the kernels of `beamcat.analyses.photon.KERNELS` (numba kernel and its NumPy/scipy
  twin), one frame at a time on one thread: what the accessor path costs beyond
  the kernel is the difference;
- original: `original_photonize`, drp-femtomax's ``CmosWorker.photonize``
  (maxiv-science/drp-femtomax @cc17e58, src/worker.py:163-188) line for line:
  ``clip - threshold``, a Python loop over the pixels above it adding each 3 x 3
  window's argmax to a set, ``scipy.ndimage.center_of_mass`` and the box sum per
  hit; called per frame with ``threshold_counting = 108`` (dark level + 8) and
  ``pre_threshold = 1100`` as the pipeline does, on `--original-frames` frames of
  each dtype (it takes seconds per frame). Its per-frame time and the ratio are
  in the table.

beamcat's ``method="original"`` is checked event by event against the original,
and the default's events against the planted photons. The machine's load
(``os.getloadavg``, 1 min) is printed before and after: on a shared machine the
best of the repeats is the figure, the median shows the spread.

    python benchmarks/photon.py [--frames 20] [--chunk 2] [--threads 2] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import dask
import dask.array as da
import numpy as np
import xarray as xr
from scipy.ndimage import center_of_mass

import beamcat  # noqa: F401 - registers ds.photon
from beamcat.analyses.photon import KERNELS, detect
from beamcat.catalog.demo.photon import PHOTON_ADU, PHOTON_ADU_SPREAD, deposit

BACKGROUND, READ_NOISE, THRESHOLD, ENERGY_MIN = 100, 3.0, 8, 1100
OPTIONS = {"threshold": THRESHOLD, "energy_min": ENERGY_MIN, "background": BACKGROUND}


def original_photonize(img: np.ndarray, threshold_counting: int, pre_threshold: float) -> list:
    """FemtoMAX's photon finder, as drp-femtomax's ``photonize`` computes it.

    ``(row, col, energy)`` per hit, in the order of a Python set; the threshold
    includes the dark level. Rows and columns are what the original calls x, y.
    """
    f = img.clip(min=threshold_counting) - threshold_counting
    peaks = set()
    for r, c in zip(*np.nonzero(f > 0), strict=True):
        window = f[r - 1 : r + 2, c - 1 : c + 2]  # empty at row/column 0 (slice from -1)
        if window.size == 0:
            continue
        dr, dc = np.unravel_index(window.argmax(), window.shape)
        peaks.add((r + dr - 1, c + dc - 1))
    found = []
    with np.errstate(invalid="ignore", divide="ignore"):  # empty boxes of peaks on row/col 0
        for r, c in peaks:
            box = f[r - 1 : r + 2, c - 1 : c + 2]
            cy, cx = center_of_mass(box)
            found.append((r + cy - 1, c + cx - 1, box.sum()))
    return [hit for hit in found if hit[2] > pre_threshold]


def make_frames(n: int, size: int, hits: int, seed: int = 0) -> tuple[np.ndarray, list]:
    """`n` frames (n, size, size) uint16 and per frame the planted (y, x) charge centroids."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, size, size), np.uint16)
    truth = []
    for i in range(n):
        signal = np.zeros((size, size))
        ys, xs = rng.uniform(2, size - 3, (2, hits))
        centres = []
        for y, x in zip(ys, xs, strict=True):
            iy, ix, box = deposit(y, x, rng.normal(PHOTON_ADU, PHOTON_ADU_SPREAD))
            signal[iy - 1 : iy + 2, ix - 1 : ix + 2] += box
            centres.append((iy, ix))
        noise = rng.normal(BACKGROUND, READ_NOISE, (size, size))
        frames[i] = np.clip(np.rint(signal + noise), 0, 65535)
        truth.append(np.array(centres))
    return frames, truth


def _sorted_hits(rows) -> np.ndarray:
    a = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def _times(run, repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls of `run`."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


def _detect_frame(frame: np.ndarray, *_) -> None:
    """`detect` on one in-memory frame (the live pipeline's call)."""
    detect(frame, **OPTIONS)


def _per_frame(kernel, frames: np.ndarray, dark: np.ndarray) -> None:
    """`kernel` (a key or value of `KERNELS`) on each frame, as `detect` calls it."""
    for frame in frames:
        kernel(frame, dark, float(THRESHOLD), float(ENERGY_MIN), False)


def _accessor_path(ds: xr.Dataset, threads: int, **options) -> xr.Dataset:
    """What a user runs: detect on the Dataset, compute, the event list."""
    tables = ds.photon.detect(**options, **OPTIONS)
    return tables.compute(scheduler="threads", num_workers=threads).photon.events()


def _check_parity(distinct: np.ndarray, truth: list, original: list) -> str:
    """beamcat's "original" method gives the original's events; the default finds the planted."""
    for i, hits in enumerate(original):
        ev = detect(distinct[i], method="original", **OPTIONS)
        ours = _sorted_hits(np.c_[ev.y, ev.x, ev.energy])
        np.testing.assert_allclose(ours, _sorted_hits(hits), rtol=1e-12, atol=1e-9)
    ev = detect(distinct[0], **OPTIONS)
    found = np.c_[ev.y, ev.x]
    d = np.abs(truth[0][:, None, :] - found[None]).max(axis=2).min(axis=1)
    return (
        f"parity: method='original' == original photonize on {len(original)} frames; frame 0: "
        f"{ev.sizes['event']} events, {np.mean(d <= 1):.2%} of {len(truth[0])} planted found"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=2)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--original-frames", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    t0 = time.perf_counter()
    uint16, truth = make_frames(args.distinct, args.size, args.hits)
    print(f"generated {args.distinct} distinct frames in {time.perf_counter() - t0:.1f} s")
    repeats = -(-args.frames // args.distinct)
    rows, original_rate = [], {}
    for dtype in ("uint16", "float32"):
        distinct = uint16.astype(dtype)
        stack = da.concatenate([da.from_array(distinct, chunks=(args.chunk, -1, -1))] * repeats)
        ds = xr.Dataset(
            {"counts": (("frame", "y", "x"), stack[: args.frames])}, attrs={"signal": "counts"}
        )
        for method in ("maxima", "original"):
            _accessor_path(ds.isel(frame=slice(0, 1)), 1, method=method)  # compile / load cache
            n = _accessor_path(ds, args.threads, method=method).sizes["event"]
            run = partial(_accessor_path, ds, args.threads, method=method)
            seconds = _times(run, args.repeats)
            rows.append((f"ds.photon.detect ({method})", dtype, args.frames, seconds, n))
        # one frame at a time, one thread: the live pipeline's latency (20 Hz: 50 ms)
        seconds = _times(partial(_per_frame, _detect_frame, distinct, None), args.repeats)
        rows.append(("detect, one frame (eager, 1 thread)", dtype, len(distinct), seconds, None))
        dark = np.broadcast_to(np.float64(BACKGROUND), distinct.shape[1:])
        for kernel, twin in KERNELS.items():
            for func, n, reps in ((kernel, len(distinct), args.repeats), (twin, 1, 1)):
                run = partial(_per_frame, func, distinct[:n], dark)
                rows.append((f"{func.__name__} (1 thread)", dtype, n, _times(run, reps), None))
        n_orig = min(args.original_frames, args.distinct)
        limit = BACKGROUND + THRESHOLD  # the original's threshold_counting includes the dark level
        t0 = time.perf_counter()
        original = [original_photonize(f, limit, ENERGY_MIN) for f in distinct[:n_orig]]
        seconds = time.perf_counter() - t0
        original_rate[dtype] = n_orig / seconds
        rows.append(("original photonize", dtype, n_orig, [seconds], sum(map(len, original))))
        print(_check_parity(distinct, truth, original) + f" ({dtype})")

    print(
        f"\n{args.size}x{args.size}, ~{args.hits} hits/frame, {args.frames} frames in chunks of "
        f"{args.chunk}, {args.threads} threads, best of {args.repeats}; load (1 min) "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs"
    )
    print(
        f"{'path':<36} {'dtype':<7} {'frames':>6} {'best s':>7} {'median s':>8} "
        f"{'frames/s':>9} {'ms/frame':>8} {'x original':>10} {'events':>7}"
    )
    for name, dtype, n, seconds, events in rows:
        best, median = min(seconds), float(np.median(seconds))
        rate = n / best
        print(
            f"{name:<36} {dtype:<7} {n:>6} {best:>7.3f} {median:>8.3f} {rate:>9.1f} "
            f"{1e3 / rate:>8.2f} {rate / original_rate[dtype]:>10.0f} "
            f"{events if events is not None else '':>7}"
        )


if __name__ == "__main__":
    with dask.config.set(scheduler="threads"):
        main()
