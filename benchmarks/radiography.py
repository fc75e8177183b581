"""Radiography: calibrate + 16 ROI means + an 8x8 grid, beamcat vs the original per-file loop.

Generates (once, under .bench/) a synthetic IMAT-like run of N single-frame
2048x2048 uint16 TIFFs plus 5 darks and 10 flats: a tube whose bed darkens over
time, source drift, Poisson-like noise. Then, each tool in a fresh subprocess
(so that ``ru_maxrss`` is its own peak resident memory), from the files on disk
(page cache warmed first, so both read from memory):

- beamcat calibrated_means: ``open_tiff`` (default chunks: bands of 512 rows of
  4 frames) -> ``dark_master`` / ``flat_master`` -> ``calibrated_means`` (air
  normalisation, 16 ROIs and the 8x8 grid in one pass from the raw counts), on the
  default threaded scheduler (mean, std and count). Only the rows of the box around
  the ROIs, the grid and the air region are read from each file, and the
  transmission of whole frames is never made, which the per-file loop cannot do;
- beamcat chain: ``calibrate`` then ``roi_means`` and ``grid_means`` computed
  together, on tiles (only the tiles holding ROI, air or grid pixels are read
  and calibrated) or on the default chunks;
- original loop: 01_Dark_Flat_Processing.py's running-mean masters, then
  03_Image_Processing.py's per-file body for every frame: imread,
  ``(im - master_dark) * inverse_master_flat``, divide by the air-ROI mean,
  ``np.mean`` of each ROI slice and of each grid cell (float cell corners cut
  with ``int()``, as the original; beamcat runs with ``edges="original"`` so the
  numbers are comparable). The original computes the ROI list and the grid in
  two separate runs of the script (``roi_grid`` is a switch); here the loop does
  both in one pass, which favours it. It computes means only, no std;
- original with ProcessPoolExecutor: the same per-file body in a process pool,
  as the script really runs it (peak memory: the largest single process).

Each tool runs ``--repeat`` times, interleaved, and its best run is shown (other
work on the machine only ever slows a run), with every run's seconds and its
CPU time per frame (all threads and processes: less sensitive to that load).
Frames/s, GB/s of raw uint16 (the whole files, whatever was read) and peak
memory are printed in one table, and the means of every tool are checked
against beamcat's.

    python benchmarks/radiography.py [--frames 500] [--size 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1] / ".bench"
N_DARK, N_FLAT = 5, 10


def layout(size: int) -> dict:
    """ROIs, air region and grid region scaled from the original cfg (2048 px detector)."""
    s = size / 2048

    def scale(rect):
        return tuple(max(1, round(v * s)) if i >= 2 else round(v * s) for i, v in enumerate(rect))

    rois = {
        f"ROI {i + 1}": scale((850 + 90 * (i % 4), 600 + 160 * (i // 4), 80, 60)) for i in range(16)
    }
    return {
        "rois": rois,
        "air": scale((200, 750, 170, 400)),
        "region": scale((840, 580, 400, 700)),
    }


def generate(frames: int, size: int) -> Path:
    """Write darks, flats and the run once; a run frame is a few array ops on shared noise."""
    folder = ROOT / f"radiography_{frames}x{size}"
    run = folder / "run"
    if len(list(run.glob("*.tif"))) == frames:
        return folder
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    open_beam = 20000.0 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.5)
    dark = 100.0 + rng.normal(0, 4, (size, size))
    tube = (np.abs(xx - 0.5) < 0.1) & (yy > 0.25) & (yy < 0.7)
    noise = [rng.normal(0, 1, (size, size)).astype(np.float32) for _ in range(8)]

    def write(path: Path, mean: np.ndarray, i: int) -> None:
        frame = mean + np.sqrt(mean) * noise[i % len(noise)]
        tifffile.imwrite(path, np.clip(np.rint(frame), 0, 65535).astype(np.uint16))

    for sub, n, mean in (("dark", N_DARK, dark), ("flat", N_FLAT, dark + open_beam)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write(folder / sub / f"{sub}_{i:05d}.tif", mean, i)
    run.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        transmission = np.where(tube, 0.6 - 0.2 * i / max(frames - 1, 1), 1.0)
        drift = 1.0 + 0.02 * np.sin(i / 7)
        write(run / f"run_{i:05d}.tif", dark + open_beam * drift * transmission, i)
    return folder


# --------------------------------------------------------------------------- beamcat


def warm_up() -> float:
    """Import beamcat and load its cached numba kernels on a tiny stack: the startup cost."""
    start = time.perf_counter()
    import xarray as xr

    from beamcat.analyses.calibrated_means import calibrated_means
    from beamcat.analyses.calibration import calibrate
    from beamcat.analyses.roi import grid_means, roi_means

    # a strided box of uint16 frames, as the TIFF reader hands over a window of rows
    counts = np.ones((2, 16, 32), np.uint16)[:, :, :16]
    frames = xr.DataArray(counts, dims=("frame", "y", "x")).chunk()
    image = xr.DataArray(np.ones((16, 16), np.float32), dims=("y", "x"))
    transmission = calibrate(frames, image - 1, image, air_roi=(0, 0, 4, 4))
    roi_means(transmission, {"a": (0, 0, 2, 2)}).compute()
    grid_means(transmission, 2, 2).compute()
    out = calibrated_means(frames, image - 1, image, rois=[(4, 0, 2, 2)], air_roi=(0, 0, 4, 4))
    out["rois"].compute()
    return time.perf_counter() - start


def run_beamcat(folder: Path, size: int, chunks: dict | None, one_pass: bool) -> dict:
    import dask

    from beamcat.analyses.calibrated_means import calibrated_means
    from beamcat.analyses.calibration import calibrate
    from beamcat.analyses.masters import dark_master, flat_master
    from beamcat.analyses.roi import grid_means, roi_means
    from beamcat.catalog.tiff import open_tiff

    lay = layout(size)
    start = time.perf_counter()
    dark = dark_master(open_tiff(folder / "dark").counts).compute()
    flat = flat_master(open_tiff(folder / "flat").counts, dark).compute()
    masters = time.perf_counter() - start
    frames = open_tiff(folder / "run", times="none", chunks=chunks).counts
    if one_pass:
        grid = {"grid": (8, 8), "grid_region": lay["region"], "grid_edges": "original"}
        lazy = calibrated_means(frames, dark, flat, rois=lay["rois"], air_roi=lay["air"], **grid)
        chunking = str(frames.data.chunksize)
    else:
        transmission = calibrate(frames, dark, flat, air_roi=lay["air"])
        lazy = {
            "rois": roi_means(transmission, lay["rois"]),
            "grid": grid_means(transmission, 8, 8, region=lay["region"], edges="original"),
        }
        chunking = str(transmission.data.chunksize)
    (out,) = dask.compute(lazy)
    return {
        "rois": out["rois"]["mean"].values.T.tolist(),  # (frame, roi)
        "grid": out["grid"]["mean"].values.reshape(64, -1).T.tolist(),  # (frame, cell)
        "chunks": chunking,
        "masters": masters,
    }


# --------------------------------------------------------------------------- original


def roi_to_slice(x, y, w, h):
    """03_Image_Processing.py's helper."""
    return (slice(int(y), int(y + h)), slice(int(x), int(x + w)))


def original_grid(region, rows: int, cols: int) -> list:
    """03_Image_Processing.py's grid: float cell corners (width W/cols), as tuples."""
    width, height = region[2] / cols, region[3] / rows
    return [
        [(region[0] + c * width, region[1] + r * height, width, height) for c in range(cols)]
        for r in range(rows)
    ]


def original_masters(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """01_Dark_Flat_Processing.py: running means; the master dark subtracted from each flat."""
    master_dark = None
    darks = sorted((folder / "dark").glob("*.tif"))
    for i, f in enumerate(darks):
        im = tifffile.imread(f).astype(np.float64)
        master_dark = im if master_dark is None else master_dark + (im - master_dark) / (i + 1)
    master_dark = master_dark.astype(np.float32)
    master_flat = None
    for i, f in enumerate(sorted((folder / "flat").glob("*.tif"))):
        im = tifffile.imread(f).astype(np.float64) - master_dark
        master_flat = im if master_flat is None else master_flat + (im - master_flat) / (i + 1)
    return master_dark, master_flat.astype(np.float32)


_STATE: dict = {}


def _init(master_dark, inverse_master_flat, calib_slice, roi_slices, grid):
    _STATE.update(
        dark=master_dark, inv=inverse_master_flat, calib=calib_slice, rois=roi_slices, grid=grid
    )


def process_frame(i: int, frame: Path) -> tuple[int, list, list]:
    """The body of 03_Image_Processing.py's process_frame_and_save (no outlier removal)."""
    s = _STATE
    im = tifffile.imread(frame)
    im = (im - s["dark"]) * s["inv"]
    cal_roi = np.mean(im[s["calib"]])
    im = im / cal_roi
    average_greyvalues = [np.mean(im[sl]) for sl in s["rois"]]
    grid_values = []
    for row in s["grid"]:
        for col in row:
            roi_bottomright = (col[0] + col[2], col[1] + col[3])
            roi = im[int(col[1]) : int(roi_bottomright[1]), int(col[0]) : int(roi_bottomright[0])]
            grid_values.append(np.mean(roi))
    return i, [float(v) for v in average_greyvalues], [float(v) for v in grid_values]


def run_original(folder: Path, size: int, workers: int) -> dict:
    lay = layout(size)
    start = time.perf_counter()
    master_dark, master_flat = original_masters(folder)
    masters = time.perf_counter() - start
    inverse_master_flat = 1.0 / np.maximum(master_flat.astype(np.float32, copy=False), 1e-6)
    state = (
        master_dark,
        inverse_master_flat,
        roi_to_slice(*lay["air"]),
        [roi_to_slice(*r) for r in lay["rois"].values()],
        original_grid(lay["region"], 8, 8),
    )
    files = sorted((folder / "run").glob("*.tif"))
    results = [None] * len(files)
    if workers == 1:
        _init(*state)
        for i, f in enumerate(files):
            results[i] = process_frame(i, f)
    else:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=state) as pool:
            for i, rois, grid in pool.map(process_frame, range(len(files)), files):
                results[i] = (i, rois, grid)
    return {"rois": [r[1] for r in results], "grid": [r[2] for r in results], "masters": masters}


# --------------------------------------------------------------------------- driver


BEAMCAT = "beamcat calibrated_means"
TOOLS = {
    # one pass from raw counts, open_tiff's default chunks
    BEAMCAT: lambda folder, size: run_beamcat(folder, size, None, True),
    # the chain calibrate -> roi_means, grid_means; tiles (64 frames x 64 rows x 512
    # columns keep every buffer at or under 16 MiB: glibc serves larger ones with fresh
    # mmap pages, whose faults cost more than reading the pixels): only the tiles holding
    # ROI, air or grid pixels are read and calibrated
    "beamcat chain, 64x512 tiles": lambda folder, size: run_beamcat(
        folder, size, {"frame": 64, "y": 64, "x": 512}, False
    ),
    "beamcat chain, default chunks": lambda folder, size: run_beamcat(folder, size, None, False),
    "original loop (1 process)": lambda folder, size: run_original(folder, size, 1),
    "original ProcessPool": lambda folder, size: run_original(folder, size, os.cpu_count() or 1),
}


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process's threads and its finished children."""
    own, kids = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(tool: str, folder: Path, size: int) -> None:
    startup = warm_up() if tool.startswith("beamcat") else 0.0  # JIT cache load, untimed
    cpu = _cpu_seconds()
    start = time.perf_counter()
    out = TOOLS[tool](folder, size)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest pool worker
    out.update(seconds=seconds, cpu=cpu, startup=startup, maxrss_mib=max(own, kids) / 1024)
    print(json.dumps(out))


def warm_cache(folder: Path) -> float:
    """Read every file once so that every tool reads from the page cache."""
    total = 0
    for f in folder.rglob("*.tif"):
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                total += len(chunk)
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tools", nargs="*", default=list(TOOLS))
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool, interleaved; the best is shown"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, generate(args.frames, args.size), args.size)
        return

    start = time.perf_counter()
    folder = generate(args.frames, args.size)
    print(f"run: {args.frames} frames of {args.size}x{args.size} uint16 in {folder} ", end="")
    print(f"(ready in {time.perf_counter() - start:.1f} s; {warm_cache(folder):.1f} GB cached)")
    raw_gb = args.frames * args.size**2 * 2 / 1e9
    load = os.getloadavg()[0]
    results, runs = {}, {}
    # interleaved runs, best of each: other work on the machine slows runs, never speeds them
    for _ in range(args.repeat):
        for tool in args.tools:
            cmd = [sys.executable, __file__, "--child", tool, "--frames", str(args.frames)]
            proc = subprocess.run([*cmd, "--size", str(args.size)], capture_output=True, text=True)
            if proc.returncode:
                print(f"{tool}: failed\n{proc.stderr[-3000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.setdefault(tool, []).append(r["seconds"])
            best = results.get(tool, r)
            results[tool] = min(best, r, key=lambda r: r["seconds"])
            results[tool]["maxrss_mib"] = max(best["maxrss_mib"], r["maxrss_mib"])

    reference = results.get(BEAMCAT)
    loop_s = results.get("original loop (1 process)", {}).get("seconds")
    rows = []
    for tool, r in results.items():
        check = "-"
        if reference is not None and tool != BEAMCAT:
            diff = max(
                np.nanmax(np.abs(np.array(r[k]) / np.array(reference[k]) - 1))
                for k in ("rois", "grid")
            )
            check = f"max rel diff {diff:.1e}"
        rows.append(
            (
                tool,
                f"{r['seconds']:.1f}",
                " ".join(f"{s:.1f}" for s in runs[tool]),
                f"{r['cpu'] / args.frames * 1e3:.1f}",
                f"{args.frames / r['seconds']:.1f}",
                f"{raw_gb / r['seconds']:.2f}",
                f"{r['maxrss_mib']:.0f}",
                f"{r['masters']:.2f}",
                f"{r['startup']:.1f}",
                f"{loop_s / r['seconds']:.1f}x" if loop_s else "-",
                check,
            )
        )
    header = (
        "tool",
        "best s",
        "runs s",
        "CPU ms/frame",
        "frames/s",
        "GB/s",
        "peak MiB",
        "masters s",
        "startup s",
        "vs loop",
        "means vs one pass",
    )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(
        f"cpus: {os.cpu_count()}, load average {load:.1f} before the runs, "
        f"{os.getloadavg()[0]:.1f} after; best of {args.repeat} interleaved runs"
    )
    for tool, r in results.items():
        if "chunks" in r:
            print(f"{tool}: chunks {r['chunks']}")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
