"""IMAT neutron radiography demo: a reactor tube whose catalyst bed takes up hydrogen.

What is written (under ``radiography/``), in the formats IMAT and ISIS write:

- ``dark/IMAT00042_dark_NNN.tif``, ``flat/IMAT00042_flat_NNN.tif``: dark and
  open-beam frames, single-page uint16 TIFFs (256 x 320) with a DateTime tag;
- ``run_0042/IMAT00042_run_NNN.tif``: the time series (48 frames, 60 s each);
- ``IMAT00042_log.csv``: the IMAT frame log (`write_imat_log`);
- ``massspec.csv``: a Hiden RGA export (`write_massspec_csv`), outlet gas;
- ``temperature.log``: an ISIS JournalViewer export (`write_temperature_log`).

The sample is a square-section tube (so that the path length, hence the true
transmission, is uniform within each region) seen side-on: side walls, an empty
part above the bed, and a catalyst bed in three zones. At `SWITCH_TIME` the
feed changes from He to H2 in Ar; hydrogen is taken up by the top zone first,
then the middle and bottom ones. The mass spectrometer sees the Ar tracer step
at the time the uptake starts (the H2 breakthrough comes later), and the
thermocouple a small exotherm. Frames are
``dark + Poisson(open_beam * drift(t) * T(y, x, t)) + read noise``, with the
transmission map blurred by 1 px (detector resolution) and a few gamma-ray
spots planted. Times in the files are local times of `TIMEZONE`
(Europe/London, which is UTC in December).

Ground truth (``radiography/truth.json`` and ``truth.npz``):

truth.json
    ``regions`` (names, in the order of the ``transmission`` columns);
    ``rois`` {region: [x, y, w, h]} (pixels; ``im[y:y+h, x:x+w]``, at least
    4 px inside their region); ``air_region`` (the drift normalisation ROI);
    ``thickness_cm``, ``cross_section_barn`` (Beer-Lambert parameters of the
    species, per H2 molecule), ``avogadro``; ``concentration_max`` {region:
    mmol/cm3}; ``switch_time``, ``uptake_start`` {region: UTC ISO time};
    ``massspec_event_time`` (Ar step, UTC); ``timezone``; ``pixel_size`` (m);
    ``exposure_s``; ``n_frames``, ``n_dark``, ``n_flat``; ``dark_level``.
truth.npz
    ``transmission`` (frame, region): true transmission T (no drift);
    ``transmission_relative`` (frame, region): T / T[first frame], what
    Beer-Lambert uses; ``concentration`` (frame, region) mmol/cm3, equal to
    ``1000 * -ln(T_rel) / thickness_cm / (sigma_barn * 1e-24) / avogadro``;
    ``drift`` (frame,): source intensity relative to the flats;
    ``labels`` (y, x) uint8: region index of each pixel (before blur);
    ``frame_start``, ``frame_end`` (frame,) datetime64[ns] UTC (the log and the
    DateTime tags give the end); ``outliers`` (n, 4) int: frame, y, x, counts
    added (gamma spots in the run frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy.ndimage import gaussian_filter

from beamcat.catalog.demo._common import Entry, write_truth

SHAPE = (256, 320)
PIXEL_SIZE = 2e-4  # m: 64 px across the 1.28 cm bore
N_DARK, N_FLAT, N_FRAMES = 5, 10, 48
EXPOSURE = 60.0  # s per frame
PERIOD = 62.0  # s between frame starts (readout)
TIMEZONE = "Europe/London"
START = pd.Timestamp("2024-12-13T14:00:00")  # first run frame, local = UTC in December
SWITCH_TIME = START + pd.Timedelta(seconds=600)
GAS_DELAY = 30.0  # s from the valve to the bed top and to the mass spectrometer
DARK_LEVEL = 100.0
READ_NOISE = 3.0
OPEN_BEAM_PEAK = 9000.0  # counts per frame at the beam centre
THICKNESS_CM = 1.3  # path through the bed (the original example's value)
CROSS_SECTION_BARN = 2 * 82.574  # two H atoms per H2 (the original example's value)
AVOGADRO = 6.02e23  # the value the original scripts use
N_OUTLIERS = 24

REGIONS = ("air", "wall", "tube_empty", "bed_top", "bed_middle", "bed_bottom")
ROIS = {
    "air": (10, 10, 60, 60),
    "wall": (121, 80, 6, 100),
    "tube_empty": (134, 15, 52, 40),
    "bed_top": (134, 75, 52, 30),
    "bed_middle": (134, 115, 52, 30),
    "bed_bottom": (134, 155, 52, 30),
}
_WALL_T = 0.78  # side walls: the beam runs along the wall
_FACES_T = 0.93  # front and back walls, seen by every pixel inside the tube
_CATALYST_T = 0.72  # dry catalyst bed
# uptake per zone: delay after the gas reaches the bed top (s), time constant (s), mmol/cm3
_UPTAKE = {
    "bed_top": (0.0, 240.0, 3.0),
    "bed_middle": (120.0, 420.0, 2.4),
    "bed_bottom": (300.0, 600.0, 1.6),
}


def _labels() -> np.ndarray:
    """Region index per pixel: a vertical tube (x 120-200, walls 8 px), bed rows 70-190."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[:, 120:128] = labels[:, 192:200] = REGIONS.index("wall")
    labels[:, 128:192] = REGIONS.index("tube_empty")
    for name, (y0, y1) in zip(
        ("bed_top", "bed_middle", "bed_bottom"), ((70, 110), (110, 150), (150, 190)), strict=True
    ):
        labels[y0:y1, 128:192] = REGIONS.index(name)
    return labels


def _concentration(t_s: np.ndarray) -> np.ndarray:
    """Hydrogen uptake (mmol/cm3), (time, region), at seconds since `START`."""
    onset0 = (SWITCH_TIME - START).total_seconds() + GAS_DELAY
    conc = np.zeros((t_s.size, len(REGIONS)))
    for name, (delay, tau, cmax) in _UPTAKE.items():
        dt = np.clip(t_s - onset0 - delay, 0.0, None)
        conc[:, REGIONS.index(name)] = cmax * (1.0 - np.exp(-dt / tau))
    return conc


def _transmission(conc: np.ndarray) -> np.ndarray:
    """True transmission (time, region) for the uptake `conc` (mmol/cm3)."""
    base = np.array([1.0, _WALL_T, _FACES_T] + [_FACES_T * _CATALYST_T] * 3)
    mu = 1e-3 * AVOGADRO * CROSS_SECTION_BARN * 1e-24 * THICKNESS_CM  # per mmol/cm3
    return base * np.exp(-conc * mu)


def _write_frames(folder: Path, frames: np.ndarray, stem: str, ends: pd.DatetimeIndex) -> None:
    folder.mkdir(parents=True)
    for i, (frame, end) in enumerate(zip(frames, ends, strict=True)):
        tifffile.imwrite(
            folder / f"{stem}_{i:03d}.tif",
            frame,
            datetime=end.to_pydatetime(),
            software="IMAT Andor Zyla 4.2",
            metadata=None,
        )


def _counts(rng, mean: np.ndarray, dark: np.ndarray) -> np.ndarray:
    noisy = rng.poisson(mean) + dark + rng.normal(0.0, READ_NOISE, mean.shape)
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the radiography sample into `folder` and return its catalog entries."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    r2 = ((yy - 120) / SHAPE[0]) ** 2 + ((xx - 170) / SHAPE[1]) ** 2
    response = rng.normal(1.0, 0.03, SHAPE)  # scintillator/pixel response, same in every frame
    open_beam = OPEN_BEAM_PEAK * np.exp(-r2 / 0.6) * response
    dark_pattern = DARK_LEVEL + rng.normal(0.0, 4.0, SHAPE)

    dark_ends = (
        START - pd.Timedelta(minutes=20) + pd.to_timedelta(np.arange(1, N_DARK + 1) * PERIOD, "s")
    )
    flat_ends = (
        START - pd.Timedelta(minutes=15) + pd.to_timedelta(np.arange(1, N_FLAT + 1) * PERIOD, "s")
    )
    _write_frames(
        folder / "dark",
        np.stack([_counts(rng, np.zeros(SHAPE), dark_pattern) for _ in range(N_DARK)]),
        "IMAT00042_dark",
        dark_ends,
    )
    _write_frames(
        folder / "flat",
        np.stack([_counts(rng, open_beam, dark_pattern) for _ in range(N_FLAT)]),
        "IMAT00042_flat",
        flat_ends,
    )

    starts_s = np.arange(N_FRAMES) * PERIOD
    mid_s = starts_s + EXPOSURE / 2
    conc = _concentration(mid_s)
    trans = _transmission(conc)
    drift = 1.0 + 0.03 * np.sin(2 * np.pi * mid_s / 2400.0) - 0.01 * mid_s / 3000.0
    labels = _labels()
    frames = np.empty((N_FRAMES, *SHAPE), dtype=np.uint16)
    for i in range(N_FRAMES):
        tmap = gaussian_filter(trans[i][labels], 1.0)  # detector blur of ~1 px
        frames[i] = _counts(rng, open_beam * drift[i] * tmap, dark_pattern)
    outliers = np.column_stack(
        [
            rng.integers(0, N_FRAMES, N_OUTLIERS),
            rng.integers(0, SHAPE[0], N_OUTLIERS),
            rng.integers(0, SHAPE[1], N_OUTLIERS),
            rng.integers(3000, 20000, N_OUTLIERS),
        ]
    )
    for f, y, x, add in outliers:
        frames[f, y, x] = min(int(frames[f, y, x]) + int(add), 65535)
    frame_start = START + pd.to_timedelta(starts_s, "s")
    frame_end = frame_start + pd.Timedelta(seconds=EXPOSURE)
    _write_frames(folder / "run_0042", frames, "IMAT00042_run", frame_end)

    _write_logs(folder, rng, frame_end, drift)
    onset0 = SWITCH_TIME + pd.Timedelta(seconds=GAS_DELAY)
    write_truth(
        folder,
        {
            "regions": list(REGIONS),
            "rois": {k: list(v) for k, v in ROIS.items()},
            "air_region": "air",
            "thickness_cm": THICKNESS_CM,
            "cross_section_barn": CROSS_SECTION_BARN,
            "avogadro": AVOGADRO,
            "concentration_max": {k: v[2] for k, v in _UPTAKE.items()},
            "switch_time": SWITCH_TIME.isoformat(),
            "uptake_start": {
                k: (onset0 + pd.Timedelta(seconds=v[0])).isoformat() for k, v in _UPTAKE.items()
            },
            "massspec_event_time": onset0.isoformat(),
            "timezone": TIMEZONE,
            "pixel_size": PIXEL_SIZE,
            "exposure_s": EXPOSURE,
            "n_frames": N_FRAMES,
            "n_dark": N_DARK,
            "n_flat": N_FLAT,
            "dark_level": DARK_LEVEL,
        },
        {
            "transmission": trans,
            "transmission_relative": trans / trans[0],
            "concentration": conc,
            "drift": drift,
            "labels": labels,
            "frame_start": frame_start.to_numpy("datetime64[ns]"),
            "frame_end": frame_end.to_numpy("datetime64[ns]"),
            "outliers": outliers,
        },
    )
    meta = {"instrument": "IMAT (ISIS)", "sample": "Pd/Al2O3 catalyst bed in a tube", "run": "42"}
    tz = {"timezone": TIMEZONE}
    # the camera's TIFFs do not record the pixel size: the catalog does
    camera = {**tz, "attrs": {"pixel_size": PIXEL_SIZE}}
    return [
        Entry("imat_dark", folder / "dark", "tiff", {**meta, "description": "dark frames"}, camera),
        Entry(
            "imat_flat",
            folder / "flat",
            "tiff",
            {**meta, "description": "open-beam frames"},
            camera,
        ),
        Entry(
            "imat_run",
            folder / "run_0042",
            "tiff",
            {**meta, "description": "operando time series, He -> H2/Ar switch at frame ~10"},
            {**camera, "frame_log": folder / "IMAT00042_log.csv"},
        ),
        Entry(
            "imat_frame_log",
            folder / "IMAT00042_log.csv",
            "imat-log",
            {**meta, "description": "IMAT frame log of the run"},
            tz,
        ),
        Entry(
            "imat_massspec",
            folder / "massspec.csv",
            "massspec-csv",
            {**meta, "description": "outlet gas, Hiden RGA partial pressures"},
            tz,
        ),
        Entry(
            "imat_temperature",
            folder / "temperature.log",
            "temperature-log",
            {**meta, "description": "bed thermocouple, ISIS JournalViewer export"},
            tz,
        ),
    ]


def _write_logs(folder: Path, rng, frame_end: pd.DatetimeIndex, drift: np.ndarray) -> None:
    """The frame log, mass-spec export and temperature log of the run.

    Times are naive UTC here; the writers put them down as `TIMEZONE` wall clock.
    """
    from beamcat.catalog.logs import write_imat_log, write_massspec_csv, write_temperature_log

    onset = (SWITCH_TIME - START).total_seconds() + GAS_DELAY
    # the beam monitor integrates the source, so it follows the drift; it counts on
    per_frame = rng.poisson(52000 * drift)
    monafter = 1_000_000 + np.cumsum(per_frame)
    write_imat_log(
        folder / "IMAT00042_log.csv",
        frame_end,
        monbefore=monafter - per_frame,
        monafter=monafter,
        timezone=TIMEZONE,
    )

    ms_start = START - pd.Timedelta(minutes=10)
    elapsed = 4.635 + np.arange(330) * 12.29  # s; the RGA's scan cycle
    t = elapsed - (START - ms_start).total_seconds()  # s since START
    step = 1.0 / (1.0 + np.exp(-(t - onset) / 8.0))  # valve step, smoothed by the gas line
    breakthrough = 1.0 / (1.0 + np.exp(-(t - onset - 900.0) / 120.0))  # bed saturated
    noise = rng.normal(1.0, 0.02, (5, t.size))
    pressures = {
        "Hydrogen": (2, (3e-8 + 4.0e-7 * breakthrough) * noise[0]),
        "Helium": (4, (3.4e-5 - 3.0e-5 * step) * noise[1]),
        "Water": (18, 8e-7 * np.exp(-elapsed / 4000.0) * noise[2]),
        "Nitrogen": (28, 2.1e-8 * noise[3]),
        "Argon": (40, (2e-9 + 1.5e-6 * step) * noise[4]),
    }
    write_massspec_csv(folder / "massspec.csv", ms_start, elapsed, pressures, timezone=TIMEZONE)

    rel = np.cumsum(rng.integers(3, 11, 700)) - 1200  # irregular JournalViewer sampling, s
    pulse = np.clip(rel - onset, 0.0, None) / 300.0
    temp = 150.0 + 4.0 * pulse * np.exp(1.0 - pulse) + rng.normal(0.0, 0.02, rel.size)
    temp = temp.round(4)  # the resolution of JournalViewer exports
    write_temperature_log(
        folder / "temperature.log",
        START + pd.to_timedelta(rel, "s"),
        temp,
        run_start=START,
        timezone=TIMEZONE,
    )
