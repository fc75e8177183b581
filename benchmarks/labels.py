"""The shared reductions' kernels vs their NumPy twins, timed side by side in one run.

Every kernel family's `KERNELS` table (kernel -> twin) is what this script runs,
as the tests do: the per-pixel-label reduction (`beamcat.analyses.labels`, twin
``np.bincount``) on a label map of `--labels` annular bins (an azimuthal
integration's shape), and the ROI statistics (`beamcat.analyses.region_stats`,
twin NumPy slices and masks) on a 16 x 16 grid of cells. Frames are synthetic,
seeded, `--frames` of ``--size x --size`` float32. Each is checked against its
twin before it is timed (best of `--repeat`).

    python benchmarks/labels.py [--frames 8] [--size 1024] [--labels 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from beamcat.analyses import labels, region_stats
from beamcat.rois import Rect


def _best(func, inputs: tuple, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(*inputs)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.size
    frames = rng.normal(100.0, 10.0, (args.frames, n, n)).astype(np.float32)
    y, x = np.indices((n, n)) - n / 2
    radius = np.hypot(y, x)
    label_map = np.minimum(radius / radius.max() * args.labels, args.labels - 1).astype(np.int64)
    label_map[:, : n // 50] = -1  # a masked strip
    step = n // 16
    cells = [Rect(c * step, r * step, step, step) for r in range(16) for c in range(16)]
    cases = {
        "labels": (labels.KERNELS, (frames, label_map, None, args.labels)),
        "region_stats": (region_stats.KERNELS, (frames, cells)),
    }
    print(f"{args.frames} frames of {n} x {n} float32; best of {args.repeat}")
    print(f"{'family':<14}{'kernel':<22}{'kernel frames/s':>16}{'twin frames/s':>15}{'ratio':>8}")
    for family, (table, inputs) in cases.items():
        for kernel, twin in table.items():
            got, want = kernel(*inputs), twin(*inputs)
            np.testing.assert_allclose(got, want, rtol=1e-9)  # float64 sums, any order
            k = args.frames / _best(kernel, inputs, args.repeat)
            t = args.frames / _best(twin, inputs, args.repeat)
            print(f"{family:<14}{kernel.__name__:<22}{k:>16.1f}{t:>15.1f}{k / t:>8.1f}")


if __name__ == "__main__":
    main()
