"""Azimuthal integration: beamcat's ``integrate1d`` vs pyFAI's fastest CPU engine, same run.

The real Dioptas frame ``CeO2_Pilatus1M.tif`` (1043 x 981 int32, gaps < 0
masked) with ``CeO2_Pilatus1M.poni`` (flipped, as Dioptas calibrated it),
``npt`` 1500 in 2θ, solid-angle correction, no error model:

- per frame, for "no" and "bbox" splitting: beamcat's ``integrate1d`` on the
  NumPy frame (the whole call: cached table and normalisation lookups, kernel,
  Dataset) against pyFAI's ``integrate1d`` with each CPU method of the same
  splitting (("no", "csr", "cython"), ("no", "histogram", "cython"),
  ("bbox", "csr", "cython"), ("bbox", "lut", "cython")), the fastest taken;
  best and median of `--repeats` after a warm-up (tables built, JIT compiled).
  The accuracy column is beamcat vs pyFAI's CSR result of that splitting:
  median and 99th percentile of the relative difference over bins with signal;
- a stack of `--frames` frames (the real frame with Poisson noise, `--distinct`
  different ones repeated; dask chunks of `--chunk` frames) integrated lazily
  through dask's threaded scheduler (graph building and compute), frames/s,
  against a pyFAI loop (its fastest method of that splitting) over the same frames.

pyFAI's Cython engines use OpenMP threads; beamcat's kernel one thread per dask
task. The machine's load (``os.getloadavg``, 1 min) is printed before and after:
on a shared machine the best of the repeats is the figure, the median the spread.

    python benchmarks/azimuthal.py [--repeats 15] [--frames 500] [--chunk 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import tifffile
import xarray as xr

from beamcat.analyses.azimuthal import integrate1d
from beamcat.analyses.geometry import as_geometry

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dioptas"
PYFAI_METHODS = {
    "no": [("no", "csr", "cython"), ("no", "histogram", "cython")],
    "bbox": [("bbox", "csr", "cython"), ("bbox", "lut", "cython")],
}
NPT = 1500


def _times(run, repeats: int) -> np.ndarray:
    run()  # warm-up: tables, JIT
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return np.array(out)


def _accuracy(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    signal = theirs != 0
    rel = np.abs(ours[signal] / theirs[signal] - 1)
    return float(np.median(rel)), float(np.percentile(rel, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--distinct", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    raw = tifffile.imread(args.data / "CeO2_Pilatus1M.tif")
    mask = raw < 0
    geo = as_geometry(args.data / "CeO2_Pilatus1M.poni", flip=True)
    ai = geo.integrator
    flipped, flipped_mask = np.ascontiguousarray(raw[::-1]), np.ascontiguousarray(mask[::-1])
    rng = np.random.default_rng(0)
    distinct = rng.poisson(np.clip(raw, 0, None), (args.distinct, *raw.shape)).astype(np.int32)
    distinct[:, mask] = -1
    print(f"load before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"CeO2 Pilatus 1M {raw.shape}, npt {NPT}, 2th_deg, solid angle; best (median) ms\n")
    head = "| split | beamcat ms/frame | pyFAI fastest ms/frame | speed-up | accuracy med / p99 |"
    print(head)
    print("|---|---|---|---|---|")
    fastest = {}
    for split, methods in PYFAI_METHODS.items():

        def ours(split=split):
            return integrate1d(raw, geo, npt=NPT, mask=mask, method=split)

        def theirs(method):
            return ai.integrate1d(flipped, NPT, unit="2th_deg", mask=flipped_mask, method=method)

        t_ours = _times(ours, args.repeats)
        peers = {m: _times(lambda m=m: theirs(m), args.repeats) for m in methods}
        best = min(peers, key=lambda m: peers[m].min())
        fastest[split] = best
        med, p99 = _accuracy(ours()["intensity"].values, theirs(methods[0]).intensity)
        t_peer = peers[best]
        print(
            f"| {split} | {t_ours.min() * 1e3:.2f} ({np.median(t_ours) * 1e3:.2f}) "
            f"| {t_peer.min() * 1e3:.2f} ({np.median(t_peer) * 1e3:.2f}) {best[1]} "
            f"| {t_peer.min() / t_ours.min():.1f}x | {med:.1e} / {p99:.1e} |"
        )
    print(f"\n{args.frames}-frame stack (Poisson noise on the frame), dask chunks of ")
    print(f"{args.chunk}, {args.threads} threads; frames/s\n")
    print("| split | beamcat lazy frames/s | pyFAI loop frames/s | speed-up |")
    print("|---|---|---|---|")
    reps = -(-args.frames // args.distinct)
    stack = da.concatenate([da.from_array(distinct, chunks=(args.chunk, *raw.shape))] * reps)
    frames = xr.DataArray(stack[: args.frames], dims=("frame", "y", "x"))
    for split in PYFAI_METHODS:
        t0 = time.perf_counter()
        out = integrate1d(frames, geo, npt=NPT, mask=mask, method=split)
        out = out.compute(scheduler="threads", num_workers=args.threads)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(args.frames):
            image = distinct[k % args.distinct][::-1]
            ai.integrate1d(image, NPT, unit="2th_deg", mask=flipped_mask, method=fastest[split])
        t_peer = time.perf_counter() - t0
        one = integrate1d(distinct[1], geo, npt=NPT, mask=mask, method=split)
        np.testing.assert_allclose(out["intensity"][1], one["intensity"], rtol=1e-12)
        n = args.frames
        print(f"| {split} | {n / t_ours:.0f} | {n / t_peer:.0f} | {t_peer / t_ours:.1f}x |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    with dask.config.set(scheduler="threads"):
        main()
