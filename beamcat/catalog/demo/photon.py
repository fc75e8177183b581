"""FemtoMAX single-photon demo: sparse CMOS frames of a rocking scan, as a recorded stream.

What is written (under ``photon/``): a dranspose recording
(`beamcat.catalog.cbor_stream.write_recording`): ``scan_0007andor3_balor-ingester-*.cbors.gz``
with 60 uint16 frames of 256 x 256 and ``scan_0007sardana-ingester-*.cbors``
with the motor ``theta`` at 10 positions, 6 frames each; and the detector's
pyFAI PONI ``scan_0007.poni`` (`PONI`: 12 um pixels 0.2 m from the sample, the
detector turned by ``rot1`` so that the InSb 111 reflection's 2θ at 8048 eV
passes through the Bragg spot), which the catalog entry carries (``poni=``):
the Live page draws q-curves on the recording with it.

Each frame is ``background (100 ADU) + read noise (sigma 3 ADU) + photons + hot
pixels``. A photon deposits ~1250 ADU (8 keV) over the 3 x 3 pixels around its
impact (charge sharing: a Gaussian cloud of sigma `CHARGE_SIGMA` px integrated
over the pixels and truncated to the 3 x 3 box). Photons in one frame are at
least `MIN_SEPARATION` px apart (Chebyshev), except the planted two-photon
pile-ups, whose two impacts share a 3 x 3 box. Photons come as a flat
background over the sensor plus a Bragg spot in the ROI whose rate follows a
rocking curve in ``theta``.

Ground truth (``photon/truth.json`` and ``truth.npz``):

truth.json
    ``background`` (ADU), ``read_noise`` (ADU), ``photon_adu`` (mean deposit),
    ``energy`` (eV), ``poni`` (pyFAI's configuration of `PONI`), ``roi`` [x, y, w, h]
    (``im[y:y+h, x:x+w]``), ``motor``
    (name), ``positions`` (per step), ``frames_per_step``, ``rocking_curve``
    {``centre``, ``sigma``, ``peak_rate``, ``base_rate``} (photons per frame
    in the ROI spot).
truth.npz
    ``photons`` (n, 4) float: frame, y, x, energy (ADU) of single photons; y, x
    are the centroid of the deposited charge (what a centre of gravity finds);
    ``impacts`` (n, 2): the impact point of each of those photons;
    ``pileups`` (m, 4): frame, y, x, energy of the two-photon events (summed
    deposit and its centroid); ``hot_pixels`` (k, 3): y, x, excess ADU in every
    frame; ``roi_mean`` (step,): per-step mean over frames of the noise-free
    photon signal (ADU above background) averaged over the ROI pixels;
    ``roi_photons`` (frame,): photons (pile-ups counted twice) with centroid in
    the ROI; ``step`` (frame,): scan step of each frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import erf

from beamcat.catalog.demo._common import Entry, write_pyfai_poni, write_truth

SHAPE = (256, 256)
BACKGROUND = 100.0
READ_NOISE = 3.0
# FemtoMAX's photonize sums (pixel - 108 ADU) over the box (~60 ADU less), and keeps sums > 1100
PHOTON_ADU = 1250.0
PHOTON_ADU_SPREAD = 20.0  # sd of the deposit from photon to photon
CHARGE_SIGMA = 0.45  # px
MIN_SEPARATION = 5  # px between impacts of distinct photons
ENERGY = 8048.0  # eV
EXPOSURE = 0.1  # s
MOTOR = "theta"
POSITIONS = np.round(10.0 + 0.1 * np.arange(10), 3)
FRAMES_PER_STEP = 6
ROI = (112, 96, 64, 64)  # x, y, w, h
SPOT = (128.0, 144.0, 6.0, 9.0)  # Bragg spot centre y, x and sigma y, x (px)
ROCKING = {"centre": 10.42, "sigma": 0.12, "peak_rate": 30.0, "base_rate": 2.0}
BACKGROUND_RATE = 8.0  # photons per frame over the sensor
HOT_PIXELS = (
    (20, 30, 40.0),
    (200, 40, 80.0),
    (40, 220, 300.0),
    (230, 200, 1500.0),
    (60, 60, 2500.0),
    (180, 240, 4000.0),
)  # y, x, excess ADU
N_PILEUPS = 6
_PIXEL = 12e-6  # m, the Balor's
_INSB_111_TTH = 2 * np.arcsin(12398.419843320026e-10 / ENERGY / (2 * 6.4794e-10 / np.sqrt(3)))
#: pyFAI configuration of the detector: the PONI at the Bragg spot, the detector normal at 2θ(111)
PONI = {
    "detector": "Detector",
    "detector_config": {"pixel1": _PIXEL, "pixel2": _PIXEL, "max_shape": list(SHAPE)},
    "dist": 0.2,
    "poni1": (SPOT[0] + 0.5) * _PIXEL,
    "poni2": (SPOT[1] + 0.5) * _PIXEL,
    "rot1": float(_INSB_111_TTH),
    "rot2": 0.0,
    "rot3": 0.0,
    "wavelength": 12398.419843320026e-10 / ENERGY,
}


def deposit(y: float, x: float, energy: float) -> tuple[int, int, np.ndarray]:
    """Charge of a photon at (y, x) shared over the 3 x 3 pixels around its nearest pixel.

    Returns
    -------
    (iy, ix, box)
        Nearest pixel and the (3, 3) deposit (ADU) centred on it; ``box.sum() == energy``.
    """
    iy, ix = int(round(y)), int(round(x))
    edges = np.array([-1.5, -0.5, 0.5, 1.5])
    wy = np.diff(erf((iy + edges - y) / (CHARGE_SIGMA * np.sqrt(2))))
    wx = np.diff(erf((ix + edges - x) / (CHARGE_SIGMA * np.sqrt(2))))
    box = np.outer(wy, wx)
    return iy, ix, energy * box / box.sum()


class _Frame:
    """Places non-overlapping charge deposits into one frame's noise-free signal."""

    def __init__(self, rng):
        self.rng = rng
        self.signal = np.zeros(SHAPE)
        self.taken: list[tuple[float, float]] = [(y, x) for y, x, _ in HOT_PIXELS]

    def free(self, y: float, x: float) -> bool:
        inside = 2 <= y <= SHAPE[0] - 3 and 2 <= x <= SHAPE[1] - 3
        return inside and all(max(abs(y - a), abs(x - b)) >= MIN_SEPARATION for a, b in self.taken)

    def add(self, y: float, x: float) -> tuple[float, float, float]:
        """Deposit one photon; return its charge centroid (y, x) and energy."""
        energy = self.rng.normal(PHOTON_ADU, PHOTON_ADU_SPREAD)
        iy, ix, box = deposit(y, x, energy)
        self.signal[iy - 1 : iy + 2, ix - 1 : ix + 2] += box
        offsets = np.array([-1.0, 0.0, 1.0])
        return iy + box.sum(1) @ offsets / energy, ix + box.sum(0) @ offsets / energy, energy


def _rate(position: float) -> float:
    r = ROCKING
    return r["base_rate"] + r["peak_rate"] * np.exp(
        -((position - r["centre"]) ** 2) / (2 * r["sigma"] ** 2)
    )


def _place(rng, frame: _Frame, rate: float) -> list[tuple[float, float, float, float, float]]:
    """Photons of one frame: the Bragg spot at `rate` and the flat background.

    Returns (y, x, energy, impact y, impact x) per photon; a photon that finds no
    free place in 20 tries is dropped rather than overlapped.
    """
    placed = []
    for kind, n in (("spot", rng.poisson(rate)), ("flat", rng.poisson(BACKGROUND_RATE))):
        for _ in range(n):
            for _attempt in range(20):
                if kind == "spot":
                    y, x = rng.normal(SPOT[:2], SPOT[2:])
                else:
                    y, x = rng.uniform(2, SHAPE[0] - 3), rng.uniform(2, SHAPE[1] - 3)
                if frame.free(y, x):
                    frame.taken.append((y, x))
                    placed.append((*frame.add(y, x), y, x))
                    break
    return placed


def _pileup(rng, frame: _Frame) -> tuple[float, float, float]:
    """Two photons sharing one 3 x 3 box: their summed deposit's centroid and energy."""
    while not frame.free(y := rng.uniform(10, SHAPE[0] - 10), x := rng.uniform(10, SHAPE[1] - 10)):
        pass
    frame.taken.append((y, x))
    (y1, x1, e1), (y2, x2, e2) = (
        frame.add(y, x),
        frame.add(y + rng.uniform(-0.5, 0.5), x + rng.uniform(-0.5, 0.5)),
    )
    return (y1 * e1 + y2 * e2) / (e1 + e2), (x1 * e1 + x2 * e2) / (e1 + e2), e1 + e2


def _in_roi(events: np.ndarray) -> np.ndarray:
    x0, y0, w, h = ROI
    y, x = events[:, 1], events[:, 2]
    return (y >= y0) & (y < y0 + h) & (x >= x0) & (x < x0 + w)


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the single-photon sample into `folder` and return its catalog entries."""
    from beamcat.catalog.cbor_stream import write_recording

    folder.mkdir(parents=True)
    n_frames = POSITIONS.size * FRAMES_PER_STEP
    step = np.repeat(np.arange(POSITIONS.size), FRAMES_PER_STEP)
    pileup_frames = set(rng.choice(n_frames, N_PILEUPS, replace=False).tolist())
    x0, y0, w, h = ROI
    photons, impacts, pileups = [], [], []
    frames = np.empty((n_frames, *SHAPE), dtype=np.uint16)
    roi_signal = np.empty(n_frames)
    hot = np.zeros(SHAPE)
    for hy, hx, excess in HOT_PIXELS:
        hot[hy, hx] = excess
    for f in range(n_frames):
        frame = _Frame(rng)
        for cy, cx, e, iy, ix in _place(rng, frame, _rate(POSITIONS[step[f]])):
            photons.append((f, cy, cx, e))
            impacts.append((iy, ix))
        if f in pileup_frames:
            pileups.append((f, *_pileup(rng, frame)))
        roi_signal[f] = frame.signal[y0 : y0 + h, x0 : x0 + w].mean()
        adu = BACKGROUND + frame.signal + hot + rng.normal(0.0, READ_NOISE, SHAPE)
        frames[f] = np.clip(np.rint(adu), 0, 65535)
    photons, pileups = np.array(photons), np.array(pileups)
    roi_photons = np.bincount(photons[_in_roi(photons), 0].astype(int), minlength=n_frames)
    roi_photons += 2 * np.bincount(pileups[_in_roi(pileups), 0].astype(int), minlength=n_frames)
    write_recording(
        folder,
        "scan_0007",
        frames,
        motor={MOTOR: POSITIONS.tolist()},
        energy=ENERGY,
        exposure=EXPOSURE,
        start_time="2024-11-21T11:21:03",
        frames_per_point=FRAMES_PER_STEP,
        detector="andor3_balor",
    )
    write_truth(
        folder,
        {
            "background": BACKGROUND,
            "read_noise": READ_NOISE,
            "photon_adu": PHOTON_ADU,
            "energy": ENERGY,
            "poni": write_pyfai_poni(folder / "scan_0007.poni", PONI).get_config(),
            "roi": list(ROI),
            "motor": MOTOR,
            "positions": POSITIONS,
            "frames_per_step": FRAMES_PER_STEP,
            "rocking_curve": ROCKING,
        },
        {
            "photons": photons,
            "impacts": np.array(impacts),
            "pileups": pileups,
            "hot_pixels": np.array(HOT_PIXELS),
            "roi_mean": roi_signal.reshape(POSITIONS.size, FRAMES_PER_STEP).mean(1),
            "roi_photons": roi_photons,
            "step": step,
        },
    )
    return [
        Entry(
            "femtomax_scan",
            folder,
            "cbor-stream",
            {
                "instrument": "FemtoMAX Andor Balor (MAX IV)",
                "sample": "InSb crystal, rocking scan",
                "run": "scan_0007",
                "description": "single-photon CMOS frames, 10 theta steps x 6 frames",
            },
            {"poni": folder / "scan_0007.poni"},
        )
    ]
