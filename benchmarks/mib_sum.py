"""Benchmark: sum every frame of a ~2 GB 12-bit MIB scan, beamcat vs LiberTEM.

Generates (once, cached under ``.bench/`` or ``--data-dir``) a 128 x 128 scan of
256 x 256 frames, non-RAW U16 (12-bit counts), 2.15 GB, with a NumPy
reference of every frame's sum computed while writing. Then, in the same run:

- beamcat: ``open_mib(path)`` + ``stem4d.sum_image(ds).compute()`` (a numba
  integer sum per frame) on the threaded dask scheduler with 1 and
  ``--workers`` threads (opening included: it parses all 16384 frame headers);
  and plain xarray ``counts.sum(("y", "x"))``, whose NumPy ``uint16 -> uint64``
  ``add.reduce`` (~5 GB/s a core) is slower than reading and decoding;
- LiberTEM: ``ctx.load("mib", path=...)`` + ``ctx.run_udf(SumSigUDF())`` with
  the ``inline`` executor (1 thread) and the ``threads`` executor
  (``--workers`` threads); context start-up is not timed.

The tools run in ``--repeat`` interleaved rounds and each one's best time is
reported: after the first round the file is in the page cache when it fits in
memory, so the best is a warm-cache figure; interleaving spreads the load of a
shared machine over all tools, and the 1-minute load average is printed with
the table. Every result is checked against the NumPy reference. beamcat keeps
one memory map per file for the process (`beamcat.catalog.mib.file_map`), so a
re-opened file skips the page faults of a new map; the "first opening" row
drops the maps before each run to time those too. A last row
times the reader alone (chunks read and decoded, one pixel per frame kept): the
difference to the sum rows is the summing.

Run: ``.venv/bin/python benchmarks/mib_sum.py`` (needs ``pip install libertem``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dask
import numpy as np

from beamcat.analyses.stem4d import sum_image
from beamcat.catalog import mib
from beamcat.catalog.mib import open_mib
from beamcat.catalog.mib_write import write_mib

ROOT = Path(__file__).resolve().parents[1]
SCAN = (128, 128)
FRAME = (256, 256)
BLOCK = 512  # frames generated at once: 64 MiB of uint16


def _blocks(reference: np.ndarray) -> Iterator[np.ndarray]:
    """Sparse-ish 12-bit frames (Poisson counts plus a few saturated hot pixels)."""
    rng = np.random.default_rng(2024)
    n = reference.size
    for start in range(0, n, BLOCK):
        k = min(BLOCK, n - start)
        block = rng.poisson(0.8, size=(k, *FRAME)).astype(np.uint16)
        block[:, 39, 52] = 4095
        reference[start : start + k] = block.sum(axis=(1, 2), dtype=np.int64)
        yield block


def ensure_data(folder: Path, scan: tuple[int, int] = SCAN) -> tuple[Path, np.ndarray]:
    """A benchmark MIB file (`scan` of 256x256 frames) and its per-frame sums, made on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"scan_{scan[0]}x{scan[1]}_256x256_u16"
    path, ref_path = folder / f"{stem}.mib", folder / f"{stem}.sums.npy"
    if not (path.exists() and ref_path.exists()):
        print(f"generating {path} ...", flush=True)
        reference = np.zeros(scan[0] * scan[1], dtype=np.int64)
        write_mib(path, _blocks(reference), depth=12, exposure=0.001, scan_shape=scan)
        np.save(ref_path, reference.reshape(scan))
    return path, np.load(ref_path)


def beamcat_runner(
    workers: int, chunks: str, *, xarray_sum=False, read_only=False, new_map=False
) -> Callable[[Path], np.ndarray]:
    """``sum_image``, or with `xarray_sum` ``counts.sum(("y", "x"))``; `read_only`: the chunks
    are read and decoded, not summed; `new_map`: the process's file maps are dropped first
    (a first opening's page faults)."""

    def run(path: Path) -> np.ndarray:
        if new_map:
            mib._MAPS.clear()
        counts = open_mib(path, chunks=chunks).counts
        with dask.config.set(scheduler="threads", num_workers=workers):
            if read_only:  # one pixel per frame kept: the reader's own cost, no reduction
                return counts.data.map_blocks(lambda b: b[..., :1, :1].copy()).compute()
            if xarray_sum:
                return counts.sum(("y", "x")).values
            return sum_image(counts).values

    return run


def libertem_runner(executor: str, workers: int) -> tuple[Callable[[Path], np.ndarray], object]:
    from libertem.api import Context
    from libertem.udf.sumsigudf import SumSigUDF

    ctx = (
        Context.make_with(executor, cpus=workers)
        if executor != "inline"
        else (Context.make_with("inline"))
    )

    def run(path: Path) -> np.ndarray:
        ds = ctx.load("mib", path=str(path), nav_shape=SCAN)
        result = ctx.run_udf(dataset=ds, udf=SumSigUDF())
        return np.asarray(result["intensity"].data)

    return run, ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks", default="auto", help="open_mib chunks (auto, 8MiB, 64 ...)")
    parser.add_argument("--no-libertem", action="store_true")
    args = parser.parse_args()

    path, reference = ensure_data(args.data_dir)
    gb = path.stat().st_size / 1e9
    tools: dict[str, Callable[[Path], np.ndarray]] = {}
    contexts = []
    for workers in sorted({1, args.workers}):
        tools[f"beamcat open_mib + sum_image ({workers} thread(s))"] = beamcat_runner(
            workers, args.chunks
        )
    tools[f"beamcat open_mib + xarray .sum ({args.workers} threads)"] = beamcat_runner(
        args.workers, args.chunks, xarray_sum=True
    )
    tools[f"beamcat, {args.workers} thr., first opening (new map)"] = beamcat_runner(
        args.workers, args.chunks, new_map=True
    )
    tools[f"(beamcat open_mib, chunks read, no sum, {args.workers} thr.)"] = beamcat_runner(
        args.workers, args.chunks, read_only=True
    )
    if not args.no_libertem:
        for executor in ("inline", "threads"):
            run, ctx = libertem_runner(executor, args.workers)
            threads = 1 if executor == "inline" else args.workers
            tools[f"LiberTEM SumSigUDF, {executor} ({threads} thread(s))"] = run
            contexts.append(ctx)
    load_before = os.getloadavg()[0]
    best = dict.fromkeys(tools, float("inf"))
    results = {}
    for _ in range(args.repeat):  # round robin: a load change hits every tool alike
        for name, run in tools.items():
            t0 = time.perf_counter()
            results[name] = run(path)
            best[name] = min(best[name], time.perf_counter() - t0)
    load_after = os.getloadavg()[0]
    for ctx in contexts:
        ctx.close()

    print(f"\nfile: {path} ({gb:.2f} GB, {SCAN[0]}x{SCAN[1]} frames of {FRAME[0]}x{FRAME[1]} U16)")
    print(
        f"best of {args.repeat} rounds (tools interleaved; warm page cache after the first), "
        f"open_mib chunks={args.chunks}; 1-min load average {load_before:.2f} before, "
        f"{load_after:.2f} after, on {os.cpu_count()} cores\n"
    )
    print(f"| {'tool':<48} | {'seconds':>8} | {'GB/s':>6} | matches NumPy |")
    print(f"|{'-' * 50}|{'-' * 10}|{'-' * 8}|---------------|")
    for name, seconds in best.items():
        values = np.asarray(results[name])
        ok = values.size == reference.size and np.array_equal(
            values.reshape(SCAN).astype(np.int64), reference
        )
        ok = ok if not name.startswith("(") else "(no sums)"
        print(f"| {name:<48} | {seconds:8.2f} | {gb / seconds:6.2f} | {ok!s:<13} |")


if __name__ == "__main__":
    main()
