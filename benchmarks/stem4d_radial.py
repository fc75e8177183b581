"""Benchmark: elliptical radial mean + variance of every frame of a ~2 GB 12-bit MIB scan.

The data are `benchmarks/mib_sum.py`'s (imported, not copied): a 128 x 128 scan
of 256 x 256 non-RAW U16 frames (12-bit Poisson counts, 2.15 GB), cached under
``.bench/``; ``--frames N`` writes a smaller scan (N frames, a multiple of 128)
with the same generator for quick runs (``--small`` = 2048 frames).

In the same run, on the same 128 elliptical bins (centre (127.6, 128.3), a/b =
1/0.97, θ = 0.5 rad, up to the largest ring whole on the detector):

- beamcat: ``open_mib`` + ``radial_profiles(ds, calibration, n_bins=128)``
  (mean, variance, normalized variance, count), threaded dask;
- LiberTEM: a UDF whose numba kernel adds Σs, Σs² per bin of the same label
  map (``process_frame``: faster here than whole partitions, which leave the
  cache), and ``ApplyMasksUDF`` with the 128 ring masks (sparse) for the mean
  only; ``threads`` executor;
- pyxem (``.bench/pyxem-venv``, its own venv: pyxem needs zarr < 3):
  ``get_azimuthal_integral1d`` (circular: its integration has no ellipse;
  pixel splitting), on ``--peer-frames`` frames, extrapolated;
- py4DSTEM (``.bench/py4dstem-venv``, created on first use: it pins an older
  NumPy): ``PolarDatacube`` (elliptical, qstep, 180 annular samples) +
  ``calculate_FEM_local``, on ``--peer-frames`` frames, extrapolated;
- a virtual ADF image (annulus 40-100 px): beamcat ``virtual_images`` vs
  LiberTEM ``ApplyMasksUDF``.

The float64 reference is exact: per-bin sums of integer counts are integers
(a sparse one-hot product), mean = S/N and variance = (N·Q - S²)/N² from exact
integers, each rounded once. Each tool runs ``--repeat`` times, taking turns
with the others, best time kept (warm page cache). Deviations are
max |tool - reference| / max |reference|.

Run: ``.venv/bin/python benchmarks/stem4d_radial.py [--small] [--no-peers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
import numba
import numpy as np
import scipy.sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mib_sum import FRAME, ROOT, _blocks, ensure_data  # noqa: E402

from beamcat.analyses.stem4d import (  # noqa: E402
    annulus_mask,
    radial_bins,
    radial_profiles,
    virtual_images,
)
from beamcat.catalog.mib import open_mib  # noqa: E402
from beamcat.catalog.mib_write import write_mib  # noqa: E402

N_BINS = 128
CAL = {"x0": 127.6, "y0": 128.3, "a": 100.0, "b": 97.0, "theta": 0.5, "reciprocal_pixel_size": 0.01}
ADF = (40.0, 100.0)
PY4DSTEM = "py4DSTEM"


def scan_file(folder: Path, frames: int | None) -> Path:
    """The full benchmark file of mib_sum.py, or a smaller one with the same generator."""
    if frames is None:
        return ensure_data(folder)[0]
    if frames % 128:
        raise SystemExit("--frames must be a multiple of 128 (scan lines of 128)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scan_{frames}_256x256_u16.mib"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        blocks = _blocks(np.zeros(frames, np.int64))
        write_mib(path, blocks, depth=12, exposure=0.001, scan_shape=(frames // 128, 128))
    return path


def reference(path: Path, labels: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Exact float64 mean and variance per bin, and the ADF image (integer sums)."""
    counts = open_mib(path).counts
    flat_labels = labels.ravel()
    keep = np.flatnonzero(flat_labels >= 0)
    onehot = scipy.sparse.csr_matrix(
        (np.ones(keep.size, np.int64), (keep, flat_labels[keep])), shape=(labels.size, N_BINS)
    )
    n = np.bincount(flat_labels[keep], minlength=N_BINS).astype(np.int64)
    sums, squares, adf = [], [], []
    for y in range(counts.sizes["scan_y"]):
        block = counts[y].values.reshape(-1, labels.size).astype(np.int64)
        sums.append((onehot.T @ block.T).T)
        squares.append((onehot.T @ (block * block).T).T)
        adf.append(block @ mask.ravel().astype(np.int64))
    s, q = np.concatenate(sums), np.concatenate(squares)
    var = (n * q - s * s).astype(np.float64) / (n * n).astype(np.float64)  # exact integers
    return {"mean": s / n, "variance": var, "adf": np.concatenate(adf).astype(np.float64)}


def deviation(values, ref) -> float:
    values = np.asarray(values, np.float64).reshape(ref.shape)
    return float(np.nanmax(np.abs(values - ref)) / np.nanmax(np.abs(ref)))


def interleaved(runners: dict, repeat: int) -> dict:
    """Best time and last result of each runner, taking turns within each repeat.

    The machine is shared: taking turns spreads another user's load over every
    tool alike, where running each tool's repeats back to back would not.
    """
    best = {name: (float("inf"), None) for name in runners}
    for _ in range(repeat):
        for name, run in runners.items():
            t0 = time.perf_counter()
            result = run()
            seconds = time.perf_counter() - t0
            best[name] = (min(best[name][0], seconds), result)
    return best


# --------------------------------------------------------------------------- beamcat


def beamcat_radial(path: Path, workers: int):
    ds = open_mib(path)
    with dask.config.set(scheduler="threads", num_workers=workers):
        out = radial_profiles(ds, CAL, n_bins=N_BINS).compute()
    n = out.sizes["scan_y"] * out.sizes["scan_x"]
    return out["mean"].values.reshape(n, -1), out["variance"].values.reshape(n, -1)


def beamcat_adf(path: Path, mask: np.ndarray, workers: int):
    ds = open_mib(path)
    with dask.config.set(scheduler="threads", num_workers=workers):
        return virtual_images(ds, mask).values.ravel()


# --------------------------------------------------------------------------- LiberTEM


@numba.njit(nogil=True, cache=True)
def _ring_sums(frame, labels, sums, squares):  # pragma: no cover - numba
    """Σs and Σs² per bin of one frame (pixels,): the lean loop LiberTEM's UDF runs."""
    for p in range(labels.size):
        b = labels[p]
        if b >= 0:
            v = np.float64(frame[p])
            sums[b] += v
            squares[b] += v * v


def libertem_udfs():
    from libertem.udf import UDF
    from libertem.udf.masks import ApplyMasksUDF

    class RadialUDF(UDF):
        """Σs and Σs² per bin of a label map, per frame (beamcat's kernel, as a LiberTEM UDF)."""

        def get_result_buffers(self):
            buf = {"kind": "nav", "extra_shape": (N_BINS,), "dtype": np.float64}
            return {"sums": self.buffer(**buf), "squares": self.buffer(**buf)}

        def process_frame(self, frame):
            _ring_sums(frame.ravel(), self.params.labels, self.results.sums, self.results.squares)

    def radial(labels):
        return RadialUDF(labels=labels.ravel().astype(np.int16))

    def masks(labels, bins):
        """One sparse mask per bin, built on the worker from the small label map."""
        factories = [lambda b=b: scipy.sparse.csr_matrix(labels == b) for b in bins]
        return ApplyMasksUDF(mask_factories=factories, use_sparse="scipy.sparse")

    return radial, masks


def libertem_runners(path: Path, labels, count, mask, workers: int):
    """LiberTEM's radial UDF, ring masks and ADF mask as runners, and the Context to close."""
    from libertem.api import Context

    radial, masks = libertem_udfs()
    ctx = Context.make_with("threads", cpus=workers)
    shape = open_mib(path).counts.shape[:2]
    ds = ctx.load("mib", path=str(path), nav_shape=shape)
    adf_labels = np.where(mask, 0, -1)

    def udf_radial():
        r = ctx.run_udf(dataset=ds, udf=radial(labels))
        sums, squares = (np.asarray(r[k].data).reshape(-1, N_BINS) for k in ("sums", "squares"))
        mean = sums / count
        return mean, squares / count - mean**2

    def udf_masks():
        r = ctx.run_udf(dataset=ds, udf=masks(labels, range(N_BINS)))
        return np.asarray(r["intensity"].data).reshape(-1, N_BINS) / count, None

    def udf_adf():
        r = ctx.run_udf(dataset=ds, udf=masks(adf_labels, [0]))
        return np.asarray(r["intensity"].data).ravel()

    radial_runners = {
        f"LiberTEM numba UDF, Σs Σs² per bin ({workers} threads)": udf_radial,
        f"LiberTEM ApplyMasksUDF, 128 ring masks ({workers} threads)": udf_masks,
    }
    return radial_runners, {f"LiberTEM ApplyMasksUDF ({workers} threads)": udf_adf}, ctx


# --------------------------------------------------------------------------- peers in venvs

PYXEM_SCRIPT = r"""
import json, sys, time
import numpy as np
from pyxem.signals import Diffraction2D
cfg = json.loads(sys.argv[1])
s = Diffraction2D(np.load(cfg["frames"]))
s.calibration.center = (cfg["x0"], cfg["y0"])  # px, (x, y)
radial = (0, cfg["r_max"])
s.calibration.get_slices1d(cfg["n_bins"], radial_range=radial)  # warm-up (imports, compiles)
t0 = time.perf_counter()
slices = s.calibration.get_slices1d(cfg["n_bins"], radial_range=radial)
setup = time.perf_counter() - t0
# each call redoes the slicing (shapely, seconds): serve the slices just made, time the rest
type(s.calibration).get_slices1d = lambda self, *args, **kwargs: slices
t0 = time.perf_counter()
out = s.get_azimuthal_integral1d(npt=cfg["n_bins"], radial_range=radial, mean=True, inplace=False)
seconds = time.perf_counter() - t0
np.save(cfg["out"], np.asarray(out.data, np.float64))
import pyxem
print(json.dumps({"seconds": seconds, "setup": setup, "version": pyxem.__version__}))
"""

PY4DSTEM_SCRIPT = r"""
import json, sys, time
import numpy as np
import py4DSTEM
cfg = json.loads(sys.argv[1])
frames = np.load(cfg["frames"])  # (1, n, y, x): py4DSTEM's Rx, Ry, Qx (row), Qy (column)
dc = py4DSTEM.DataCube(data=frames.astype(np.float64)[None])
dc.calibration.set_origin((cfg["y0"], cfg["x0"]))
dc.calibration.set_p_ellipse((cfg["y0"], cfg["x0"], cfg["a"], cfg["b"], cfg["theta"]))
t0 = time.perf_counter()
radii = {"qmin": cfg["qmin"], "qmax": cfg["q_max"], "qstep": cfg["qstep"]}
polar = py4DSTEM.process.polar.PolarDatacube(dc, n_annular=180, **radii)
mean, var = polar.calculate_FEM_local(plot_normalized_variance=False, return_values=True,
                                      progress_bar=False)
seconds = time.perf_counter() - t0
np.save(cfg["out"], np.stack([mean[0], var[0]]).astype(np.float64))
print(json.dumps({"seconds": seconds, "version": py4DSTEM.__version__}))
"""


def venv_python(folder: Path, package: str) -> Path | None:
    """The venv's python with `package` installed (created here on first use), or None."""
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"creating {folder} for {package} (its own venv: it pins other versions) ...")
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    ok = subprocess.run([python, "-c", f"import {package}"], capture_output=True).returncode == 0
    if not ok:
        done = subprocess.run([python, "-m", "pip", "install", "-q", package])
        if done.returncode:
            return None
    return python


def run_peer(python: Path, script: str, cfg: dict) -> dict:
    done = subprocess.run(
        [python, "-c", script, json.dumps(cfg)], capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--frames", type=int, default=None, help="default: the full 16384")
    parser.add_argument("--small", action="store_true", help="--frames 2048")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-frames", type=int, default=256, help="frames pyxem/py4DSTEM get")
    parser.add_argument("--no-peers", action="store_true", help="beamcat only")
    args = parser.parse_args()

    path = scan_file(args.data_dir, 2048 if args.small else args.frames)
    counts = open_mib(path).counts
    n_frames = counts.shape[0] * counts.shape[1]
    gb = path.stat().st_size / 1e9
    labels = radial_bins(FRAME, CAL, n_bins=N_BINS).labels
    count = np.bincount(labels[labels >= 0], minlength=N_BINS).astype(np.float64)
    mask = annulus_mask(FRAME, (CAL["x0"], CAL["y0"]), *ADF)
    print(f"reference (exact float64) on {n_frames} frames ...", flush=True)
    ref = reference(path, labels, mask)

    w = args.workers
    radial_runners = {f"beamcat radial_profiles ({w} threads)": lambda: beamcat_radial(path, w)}
    adf_runners = {f"beamcat virtual_images ({w} threads)": lambda: beamcat_adf(path, mask, w)}
    ctx = None
    if not args.no_peers:
        more_radial, more_adf, ctx = libertem_runners(path, labels, count, mask, w)
        radial_runners.update(more_radial)
        adf_runners.update(more_adf)
    timed = interleaved({**radial_runners, **adf_runners}, args.repeat)
    if ctx is not None:
        ctx.close()
    # (name, seconds, frames timed, (mean, variance or None), reference)
    rows = [(name, *timed[name][:1], n_frames, timed[name][1], ref) for name in radial_runners]
    adf_rows = [(name, *timed[name]) for name in adf_runners]
    if not args.no_peers:
        rows += run_venv_peers(args, counts)

    print(f"\nfile: {path} ({gb:.2f} GB, {n_frames} frames of 256x256 U16, 12-bit)")
    print(f"{N_BINS} bins; best of {args.repeat}, tools taking turns; {os.cpu_count()} CPUs")
    print("peers on a subset: frames/s and GB/s are per frame, extrapolated to the file\n")
    print(f"| {'tool':<52} | frames | {'s':>7} | frames/s | GB/s  | mean dev | var dev  |")
    print(f"|{'-' * 54}|--------|---------|----------|-------|----------|----------|")
    per_frame = gb / n_frames
    for name, seconds, frames, (mean, var), against in rows:
        m = deviation(mean, against["mean"][:frames])
        v = "-" if var is None else f"{deviation(var, against['variance'][:frames]):.1e}"
        rate = frames / seconds
        print(
            f"| {name:<52} | {frames:>6} | {seconds:7.2f} | {rate:8.0f} | "
            f"{rate * per_frame:5.2f} | {m:.1e}  | {v:<8} |"
        )
    print(f"\nvirtual ADF image (annulus {ADF[0]:g}-{ADF[1]:g} px), {n_frames} frames:\n")
    print(f"| {'tool':<52} | {'s':>7} | frames/s | GB/s  | deviation |")
    print(f"|{'-' * 54}|---------|----------|-------|-----------|")
    for name, seconds, image in adf_rows:
        rate = n_frames / seconds
        dev = deviation(image, ref["adf"])
        print(f"| {name:<52} | {seconds:7.2f} | {rate:8.0f} | {gb / seconds:5.2f} | {dev:.1e}   |")


def _frames_reference(frames: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Exact float64 mean and variance per bin of frames in memory (the peers' subset)."""
    flat = frames.reshape(len(frames), -1).astype(np.int64)
    keep = labels.ravel() >= 0
    bins = labels.ravel()[keep]
    n = np.bincount(bins, minlength=N_BINS)
    s = np.stack([np.bincount(bins, f[keep], minlength=N_BINS) for f in flat]).astype(np.int64)
    q = np.stack([np.bincount(bins, f[keep] ** 2, minlength=N_BINS) for f in flat])
    var = (n * q.astype(np.int64) - s * s) / (n * n).astype(np.float64)
    return {"mean": s / n, "variance": var}


def run_venv_peers(args, counts) -> list:
    """pyxem and py4DSTEM in their own venvs on the first --peer-frames frames."""
    k = min(args.peer_frames, counts.shape[0] * counts.shape[1])
    folder = args.data_dir
    frames_file = folder / f"peer_frames_{k}.npy"
    frames = counts[: -(-k // counts.shape[1])].values.reshape(-1, *FRAME)[:k]
    np.save(frames_file, frames)
    bins = radial_bins(FRAME, CAL, n_bins=N_BINS)
    step = bins.q_step / CAL["reciprocal_pixel_size"]  # px along the major axis
    circle = {**CAL, "a": 1.0, "b": 1.0}  # pyxem: circular bins of the same width
    circular = radial_bins(FRAME, circle, q_step=bins.q_step, q_max=bins.q_step * N_BINS)
    references = {
        "pyxem": _frames_reference(frames, circular.labels),
        PY4DSTEM: _frames_reference(frames, bins.labels),
    }
    ratio = CAL["b"] / CAL["a"]
    common = {"frames": str(frames_file), "x0": CAL["x0"], "y0": CAL["y0"], "n_bins": N_BINS}
    peers = {
        "pyxem": (PYXEM_SCRIPT, {"r_max": step * N_BINS}),
        # py4DSTEM: x is the row (θ' = π/2 - θ), its radius runs along the minor axis (b/a of ours)
        PY4DSTEM: (
            PY4DSTEM_SCRIPT,
            {
                "a": CAL["a"],
                "b": CAL["b"],
                "theta": np.pi / 2 - CAL["theta"],
                "qstep": step * ratio,
                "qmin": step * ratio / 2,  # it samples at qmin + k qstep: our bin centres
                "q_max": step * ratio * (N_BINS + 0.5) - 1e-9,
            },
        ),
    }
    rows = []
    for name, (script, extra) in peers.items():
        venv = folder / f"{name.lower()}-venv"
        python = venv_python(venv, name)
        if python is None:
            print(f"{name}: could not install into {venv}; skipped")
            continue
        out = folder / f"peer_{name}.npy"
        try:
            result = run_peer(python, script, {**common, **extra, "out": str(out)})
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"{name} failed: {err}")
            continue
        values = np.load(out)
        mean, var = (values, None) if name == "pyxem" else (values[0], values[1])
        var = None if var is None else var[:, :N_BINS]
        label = f"{name} {result['version']} ({k} frames, own venv)"
        if "setup" in result:
            print(f"{name}: its geometry slices ({result['setup']:.1f} s a call) not counted")
        rows.append((label, result["seconds"], k, (mean[:, :N_BINS], var), references[name]))
    return rows


if __name__ == "__main__":
    main()
