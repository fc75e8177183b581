"""Open and sum a stack of single-frame TIFF files: beamcat vs tifffile+zarr vs dask-image.

Generates N files of SIZE x SIZE uint16 (once) under .bench/, then times, for each
tool in the same run: opening the stack as a dask array (best of 3) and summing
every frame (reads every pixel, default threaded scheduler).

    python benchmarks/tiff_open.py [--files 10000] [--size 512]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile

from beamcat.catalog.tiff import open_tiff

ROOT = Path(__file__).resolve().parents[1] / ".bench"


def generate(files: int, size: int) -> Path:
    """Write the stack once: one real TIFF, its bytes copied with a frame-specific pixel."""
    folder = ROOT / f"tiff_{files}x{size}"
    if len(list(folder.glob("*.tif"))) == files:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frame = rng.poisson(100, (size, size)).astype(np.uint16)
    tifffile.imwrite(folder / "frame_00000.tif", frame)
    data = bytearray((folder / "frame_00000.tif").read_bytes())
    offset = tifffile.TiffFile(folder / "frame_00000.tif").pages.first.dataoffsets[0]
    for i in range(1, files):
        data[offset : offset + 2] = np.uint16(i % 65536).tobytes()  # pixel (0, 0) = frame index
        (folder / f"frame_{i:05d}.tif").write_bytes(data)
    return folder


def expected_sum(folder: Path, files: int) -> int:
    frame = tifffile.imread(folder / "frame_00000.tif").astype(np.int64)
    first = int(frame[0, 0])
    return (
        files * int(frame.sum()) - files * first + sum(i % 65536 for i in range(1, files)) + first
    )


def opener_beamcat(folder: Path):
    return open_tiff(folder).counts.data


def opener_tifffile_zarr(folder: Path):
    files = sorted(folder.glob("*.tif"))
    return da.from_zarr(tifffile.TiffSequence(files).aszarr())


def opener_dask_image(folder: Path):
    from dask_image.imread import imread

    with warnings.catch_warnings():  # pims' skimage plugin deprecation, once per file
        warnings.simplefilter("ignore", FutureWarning)
        return imread(str(folder / "*.tif"))


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    start = time.perf_counter()
    folder = generate(args.files, args.size)
    print(
        f"stack: {args.files} files of {args.size}x{args.size} uint16 in {folder} "
        f"(ready in {time.perf_counter() - start:.1f} s)"
    )
    truth = expected_sum(folder, args.files)

    openers = {
        "beamcat open_tiff": opener_beamcat,
        "tifffile TiffSequence.aszarr + da.from_zarr": opener_tifffile_zarr,
        "dask_image.imread": opener_dask_image,
    }
    rows = []
    for name, opener in openers.items():
        try:
            open_s, arr = best_of(lambda opener=opener: opener(folder))
        except ImportError as err:
            rows.append((name, "not installed", "", "", str(err).split("\n")[0]))
            continue
        start = time.perf_counter()
        total = int(arr.sum(dtype=np.int64).compute())
        sum_s = time.perf_counter() - start
        check = "ok" if total == truth else f"WRONG {total} != {truth}"
        rows.append((name, f"{open_s:.3f}", f"{sum_s:.1f}", str(arr.npartitions), check))

    header = ("tool", "open s (best of 3)", "sum s", "chunks", "sum check")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
