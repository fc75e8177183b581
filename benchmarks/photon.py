"""Photon detection: beamcat `detect` vs the original FemtoMAX ``photonize``, same run.

Synthetic Balor-like frames, generated in memory (seeded): 2048 x 2048 uint16,
dark level 100 ADU, read noise 3 ADU, ~1,000 photons of ~1250 ADU per frame
shared over 3 x 3 pixels (the demo's charge cloud, `beamcat.catalog.demo.photon`).
`--distinct` different frames are generated and repeated to `--frames`, so the
stack costs no memory beyond them; it is a dask array chunked by `--chunk` frames.

- beamcat: ``detect(frames, threshold=8, energy_min=1100)`` (3 x 3 maxima, the
  default) computed on dask's threaded scheduler with `--threads` workers, and
  ``method="original"`` the same way;
- original: `original_photonize`, a re-implementation of drp-femtomax's
  ``CmosWorker.photonize`` (src/worker.py:163-188) with the same Python loop over
  above-threshold pixels, set of window argmaxes and ``scipy.ndimage.center_of_mass``
  per hit; called per frame with ``threshold_counting = 108`` (dark level + 8)
  and ``pre_threshold = 1100`` as the pipeline does, on `--original-frames`
  frames (it is slow).

beamcat's ``method="original"`` is checked event by event against it, and the
default's events against the planted photons. The table gives frames/s and the
ratio to the original; also the latency of one frame (eager, one thread), which
a live pipeline at 20 Hz must keep under 50 ms.

    python benchmarks/photon.py [--frames 400] [--size 2048] [--hits 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da
import numpy as np
import xarray as xr
from scipy.ndimage import center_of_mass

from beamcat.analyses.photon import detect
from beamcat.catalog.demo.photon import PHOTON_ADU, PHOTON_ADU_SPREAD, deposit

BACKGROUND, READ_NOISE, THRESHOLD, ENERGY_MIN = 100, 3.0, 8, 1100


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--original-frames", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    distinct, truth = make_frames(args.distinct, args.size, args.hits)
    print(f"generated {args.distinct} distinct frames in {time.perf_counter() - t0:.1f} s")
    repeats = -(-args.frames // args.distinct)
    stack = da.concatenate([da.from_array(distinct, chunks=(args.chunk, -1, -1))] * repeats)
    frames = xr.DataArray(stack[: args.frames], dims=("frame", "y", "x"))
    options = {"threshold": THRESHOLD, "energy_min": ENERGY_MIN, "background": BACKGROUND}
    detect(distinct[:1], **options)  # compile (or load the cached) kernels
    detect(distinct[:1], method="original", **options)

    rows = []
    for method in ("maxima", "original"):
        lazy = detect(frames, method=method, **options)
        t0, c0 = time.perf_counter(), time.process_time()
        events = lazy.compute(scheduler="threads", num_workers=args.threads)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(
            (f"beamcat detect ({method})", args.frames, seconds, cpu, events.sizes["event"])
        )

    n_orig = min(args.original_frames, args.distinct)
    t0, c0 = time.perf_counter(), time.process_time()
    limit = BACKGROUND + THRESHOLD  # the original's threshold_counting includes the dark level
    original = [original_photonize(f, limit, ENERGY_MIN) for f in distinct[:n_orig]]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows.append(("original photonize", n_orig, seconds, cpu, sum(map(len, original))))

    # parity: beamcat's "original" method gives the original's events, to rounding
    for i, hits in enumerate(original):
        ev = detect(distinct[i], method="original", **options)
        ours = _sorted_hits(np.c_[ev.y, ev.x, ev.energy])
        np.testing.assert_allclose(ours, _sorted_hits(hits), rtol=1e-12, atol=1e-9)
    # the default against the planted photons (hottest pixel within one pixel of the impact's)
    ev = detect(distinct[0], **options)
    found = np.c_[ev.y, ev.x]
    d = np.abs(truth[0][:, None, :] - found[None]).max(axis=2).min(axis=1)
    n_events = ev.sizes["event"]
    print(f"frame 0: {n_events} events, {np.mean(d <= 1):.2%} of {args.hits} planted found")

    t0 = time.perf_counter()
    for f in distinct:
        detect(f, **options)
    latency = (time.perf_counter() - t0) / len(distinct) * 1e3

    base = rows[-1][1] / rows[-1][2]
    print(f"\n{args.size}x{args.size} uint16, ~{args.hits} hits/frame, {args.threads} threads")
    # CPU s: all threads' CPU time; frames per CPU-second x cores is the rate on idle cores
    print(
        f"{'tool':<27} {'frames':>6} {'s':>6} {'CPU s':>6} {'frames/s':>9} "
        f"{'frames/CPU-s':>12} {'x original':>10} {'events':>7}"
    )
    for name, n, seconds, cpu, n_events in rows:
        rate = n / seconds
        print(
            f"{name:<27} {n:>6} {seconds:>6.2f} {cpu:>6.2f} {rate:>9.1f} {n / cpu:>12.1f} "
            f"{rate / base:>10.0f} {n_events:>7}"
        )
    print(f"one frame, eager, one thread: {latency:.1f} ms (20 Hz budget: 50 ms)")


if __name__ == "__main__":
    with dask.config.set(scheduler="threads"):
        main()
