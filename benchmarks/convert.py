"""Benchmark: MIB -> chunked, compressed store, beamcat convert vs HyperSpy/RosettaSciIO.

Generates (once, under ``.bench/`` or ``--data-dir``) a 64 x 64 scan of 256 x 256
12-bit frames (537 MB; ``--full``: benchmarks/mib_sum.py's 128 x 128, 2.15 GB),
then in the same run, interleaved rounds, best of ``--repeat``:

- beamcat: ``beamcat.catalog.convert.convert(mib, out.zarr)`` (Zarr v3, shards of
  whole frames, Blosc zstd-3 bit shuffle), threaded dask scheduler, ``--workers``;
- HyperSpy 2.5 / RosettaSciIO: ``hs.load(mib, lazy=True, navigation_shape=...)``
  then ``s.save(out.hspy)`` (HDF5, its default gzip), same scheduler;
- HyperSpy's ``s.save(out.zspy)`` (Zarr v2, its default Blosc) when
  ``.bench/zspy-venv`` exists: RosettaSciIO's zspy writer needs zarr < 3, so it
  runs in that venv (``python -m venv .bench/zspy-venv &&
  .bench/zspy-venv/bin/pip install "zarr<3" rosettasciio hyperspy``), timed inside.

MB/s is MIB bytes per second of conversion. Each store is read back and compared
with the MIB's frames; then, from each store, one frame (the pattern browser:
mean over 20 scan positions) and a virtual image over all frames (a centred disc
of radius 32 px, the bright field) are timed.

Run: ``.venv/bin/python benchmarks/convert.py [--full] [--repeat 2] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mib_sum import ROOT, SCAN, ensure_data  # noqa: E402

import beamcat  # noqa: E402
from beamcat.catalog.convert import convert  # noqa: E402

SMALL = (64, 64)
ZSPY_VENV = ROOT / ".bench" / "zspy-venv"
ZSPY_SCRIPT = """
import sys, time, json
import dask
import hyperspy.api as hs
path, out, ny, nx, workers = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
with dask.config.set(scheduler="threads", num_workers=workers):
    t0 = time.perf_counter()
    s = hs.load(path, lazy=True, navigation_shape=(nx, ny))
    s.save(out, overwrite=True, show_progressbar=False)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run_beamcat(path: Path, out: Path, scan) -> None:
    convert(path, out, options={"scan_shape": scan}, progress=False)


def run_hspy(path: Path, out: Path, scan) -> None:
    import hyperspy.api as hs

    s = hs.load(path, lazy=True, navigation_shape=(scan[1], scan[0]))
    s.save(out, overwrite=True, show_progressbar=False)


def run_zspy(path: Path, out: Path, scan, workers: int) -> float:
    args = [str(path), str(out), str(scan[0]), str(scan[1]), str(workers)]
    done = subprocess.run(
        [str(ZSPY_VENV / "bin" / "python"), "-c", ZSPY_SCRIPT, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def readers(out: Path):
    """(one frame at (i, j), the whole (ny, nx, y, x) dask array, chunk shape) of a store.

    RosettaSciIO stores MIB frames flipped vertically (and big-endian): flipped back here.
    """
    import dask.array as da

    if out.suffix == ".zarr":
        counts = beamcat.open_dataset(out).counts.data
        return (lambda i, j: np.asarray(counts[i, j])), counts, counts.chunksize
    if out.suffix == ".hspy":
        import h5py

        group = h5py.File(out, "r")["Experiments"]
    else:  # zspy: a Zarr v2 store, which zarr 3 reads
        import zarr

        group = zarr.open_group(out, mode="r")["Experiments"]
    (name,) = list(group.keys())
    data = group[name]["data"]
    whole = da.from_array(data, chunks=data.chunks)[..., ::-1, :]
    return (lambda i, j: data[i, j][::-1]), whole, data.chunks


def check_and_browse(out: Path, source, scan, disc: np.ndarray) -> dict:
    """Read the store back against the MIB; time a frame and a bright-field image."""
    frame, whole, chunks = readers(out)
    same = bool((whole == source).all().compute())
    rng = np.random.default_rng(0)
    spots = rng.integers(0, scan, size=(20, 2))
    t0 = time.perf_counter()
    for i, j in spots:
        frame(int(i), int(j))
    one = (time.perf_counter() - t0) / len(spots)
    t0 = time.perf_counter()
    image = (whole * disc).sum(axis=(2, 3)).compute()
    virtual = time.perf_counter() - t0
    return {
        "same": same,
        "frame_ms": one * 1e3,
        "virtual_s": virtual,
        "image": image,
        "chunks": chunks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--full", action="store_true", help="128 x 128 scan (2.15 GB)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scan = SCAN if args.full else SMALL
    path, _ = ensure_data(args.data_dir, scan)
    mb = path.stat().st_size / 1e6
    work = args.data_dir / "convert_out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    outs = {
        "beamcat convert -> Zarr v3 (sharded, blosc zstd bitshuffle)": work / "beamcat.zarr",
        "HyperSpy/RosettaSciIO save -> HDF5 .hspy (gzip)": work / "hyperspy.hspy",
    }
    if (ZSPY_VENV / "bin" / "python").exists():
        outs["HyperSpy/RosettaSciIO save -> .zspy (Zarr v2, blosc)"] = work / "hyperspy.zspy"
    best = dict.fromkeys(outs, float("inf"))
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, out in outs.items():
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
            if out.suffix == ".zspy":
                seconds = run_zspy(path, out, scan, args.workers)
            else:
                with dask.config.set(scheduler="threads", num_workers=args.workers):
                    t0 = time.perf_counter()
                    (run_beamcat if out.suffix == ".zarr" else run_hspy)(path, out, scan)
                    seconds = time.perf_counter() - t0
            best[name] = min(best[name], seconds)
    load_after = os.getloadavg()[0]

    source = beamcat.open_dataset(path, scan_shape=scan).counts.data
    yy, xx = np.indices(source.shape[-2:])
    disc = (np.hypot(yy - 127.5, xx - 127.5) < 32).astype(np.uint32)
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        truth = (source * disc).sum(axis=(2, 3)).compute()
        mib_virtual = time.perf_counter() - t0
        checks = {name: check_and_browse(out, source, scan, disc) for name, out in outs.items()}

    print(f"\nfile: {path} ({mb:.0f} MB, {scan[0]}x{scan[1]} frames of 256x256 12-bit U16)")
    print(
        f"best of {args.repeat} interleaved rounds, {args.workers} dask threads; 1-min load "
        f"average {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} cores\n"
    )
    columns = ["tool", "seconds", "MB/s", "output MB", "ratio", "lossless", "chunks"]
    columns += ["1 frame ms", "BF image s"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, out in outs.items():
        c = checks[name]
        same = c["same"] and np.array_equal(c["image"], truth)
        size = size_of(out) / 1e6
        print(
            f"| {name} | {best[name]:.2f} | {mb / best[name]:.0f} | {size:.0f} | "
            f"{mb / size:.1f} | {same} | {c['chunks']} | {c['frame_ms']:.1f} | "
            f"{c['virtual_s']:.2f} |"
        )
    print(f"| (the MIB itself, open_mib) | | | {mb:.0f} | 1.0 | | | | {mib_virtual:.2f} |")


if __name__ == "__main__":
    main()
