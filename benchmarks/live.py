"""Live pipeline: frames/s and per-frame latency of `LivePipeline`, beside the original's step.

What a viewer at the beamline waits for: the time from a decoded frame to its
accumulated image and ROI means (`LivePipeline.process` on a replayed event,
which `LivePipeline.latency` measures), for each processing mode:

- ``image`` on the real FemtoMAX recording (``../shared/data/drp_femtomax``:
  30 Pilatus frames 831 x 1475 float32, 3 ROIs, 5 motor steps), replayed from
  memory (decoding is not timed) `--repeat` times;
- ``cmos`` and ``photon`` on synthetic Balor-like frames (`--size` squared uint16,
  ~`--hits` photons of ~1250 ADU, dark level 100 ADU; the photon benchmark's
  generator), as many as `--frames`.

The original (maxiv-science/drp-femtomax) runs, per frame, in its worker the
processing and the ROI means and in its reducer the accumulation. Its step is
re-enacted with NumPy in `original_step` (``clip(min=0)`` ROI means, ``+=``
accumulation; photon mode: `benchmarks/photon.py`'s ``original_photonize`` then
the clean image by ``np.add.at``) and timed on the same frames in the same run.

The table gives frames/s (1 / mean latency) and the latency's median, 95th
percentile and maximum in ms; the 20 Hz budget of FemtoMAX is 50 ms per frame.
Each mode is warmed up first (kernels load) on a pipeline that is not timed. This
is a measurement, not a test: on a shared machine the numbers move with the load.

    python benchmarks/live.py [--repeat 3] [--frames 20] [--size 1024] [--hits 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from beamcat.catalog.cbor_stream import StreamEvent, replay
from beamcat.live import LivePipeline

sys.path.insert(0, str(Path(__file__).parent))
from photon import BACKGROUND, ENERGY_MIN, THRESHOLD, make_frames, original_photonize  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "drp_femtomax"
#: on the LaB6 rings of the Pilatus frames, off them, and the whole frame (as the tests)
ROIS = {"ring": (600, 300, 300, 200), "off": (100, 100, 200, 100), "all": (0, 0, 1475, 831)}
FRAME_PERIOD_MS = 50.0  # FemtoMAX's 20 Hz


def original_step(frame: np.ndarray, state: dict, mode: str, rois: dict) -> None:
    """One frame of the original worker + reducer (drp-femtomax), re-enacted with NumPy."""
    if mode == "photon":
        hits = original_photonize(frame, BACKGROUND + THRESHOLD, ENERGY_MIN)
        image = np.zeros(frame.shape, np.int64)
        if hits:
            rc = np.rint(np.array(hits)[:, :2]).astype(int)
            np.add.at(image, (rc[:, 0], rc[:, 1]), 1)
    elif mode == "cmos":
        image = frame.astype(np.float64) - BACKGROUND
        image[image < 12] = 0  # the Zyla's threshold
    else:
        image = frame
    state["means"] = [
        float(image[y : y + h, x : x + w].clip(min=0).mean()) for x, y, w, h in rois.values()
    ]
    state["acc"] = image.astype(np.float64) if "acc" not in state else state["acc"] + image


def _stats(seconds: list[float]) -> tuple[float, float, float, float]:
    ms = np.array(seconds) * 1e3
    return 1e3 / ms.mean(), np.median(ms), np.percentile(ms, 95), ms.max()


def run(mode: str, events: list[StreamEvent], frames: list[np.ndarray], rois: dict) -> list:
    """(tool, frames, frames/s, median, p95, max) for beamcat and the original on one mode."""
    warm = LivePipeline(mode=mode, rois=rois)  # warm-up: numba kernels load
    warm.process(next(e for e in events if e.kind == "image"))
    live = LivePipeline(mode=mode, rois=rois)
    for event in events:
        live.process(event)
    lat = live.latency()  # per frame: decoded frame -> accumulated image and step means
    rate = 1.0 / lat["mean"]
    ms = [lat[k] * 1e3 for k in ("median", "p95", "max")]
    rows = [(f"beamcat LivePipeline ({mode})", lat["n"], rate, *ms)]

    original_step(frames[0], {}, mode, rois)  # the same warm-up
    state: dict = {}
    seconds = []
    for frame in frames:
        t0 = time.perf_counter()
        original_step(frame, state, mode, rois)
        seconds.append(time.perf_counter() - t0)
    rows.append((f"original step ({mode})", len(seconds), *_stats(seconds)))
    return rows


def _image_events(frames: list[np.ndarray]) -> list[StreamEvent]:
    """Synthetic detector events (no motor stream: each frame its own step)."""
    nat = np.datetime64("NaT")
    return [StreamEvent(i, nat, "image", f, i) for i, f in enumerate(frames)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the real recording")
    parser.add_argument("--frames", type=int, default=20, help="synthetic frames per mode")
    parser.add_argument("--size", type=int, default=1024, help="synthetic frame side (pixels)")
    parser.add_argument("--hits", type=int, default=500, help="photons per synthetic frame")
    args = parser.parse_args()

    rows = []
    if DATA.is_dir():
        recorded = list(replay(DATA))  # decoded once: decoding is not what is timed
        events = [e for _ in range(args.repeat) for e in recorded]  # steps repeat: fine
        frames = [e.frame for e in events if e.kind == "image"]
        rows += run("image", events, frames, ROIS)
        shape = frames[0].shape
    else:
        print(f"{DATA} not found: the real recording's row is left out")
        shape = None
    distinct, _ = make_frames(4, args.size, args.hits)
    side = args.size
    box = {"centre": (side // 4, side // 4, side // 2, side // 2), "all": (0, 0, side, side)}
    synthetic = [distinct[i % len(distinct)] for i in range(args.frames)]
    for mode in ("cmos", "photon"):
        rows += run(mode, _image_events(synthetic), synthetic, box)

    if shape is not None:
        print(f"image: real Pilatus {shape[0]} x {shape[1]} float32, {len(ROIS)} ROIs")
    print(f"cmos, photon: synthetic {side} x {side} uint16, ~{args.hits} photons/frame, 2 ROIs")
    print(
        f"\n{'tool':<30} {'frames':>6} {'frames/s':>9} {'median ms':>10} {'p95 ms':>8} "
        f"{'max ms':>8}   (20 Hz budget: {FRAME_PERIOD_MS:.0f} ms)"
    )
    for name, n, rate, median, p95, worst in rows:
        print(f"{name:<30} {n:>6} {rate:>9.1f} {median:>10.1f} {p95:>8.1f} {worst:>8.1f}")


if __name__ == "__main__":
    main()
