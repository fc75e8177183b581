"""APS gain-map demo: amorphous-scatterer images on a Pilatus 100K at five detector positions.

What is written (under ``gainmap/``): for each position k = 1..5 a folder
``pos<k>/`` of int32 TIFFs (195 x 487, Pilatus camserver ImageDescription) and
the pyFAI PONI (v1 text) of that position, ``pos<k>.poni``. The detector is
moved sideways between positions, so each pixel sees a different 2-theta and
the beam-stop shadow (a disc on an arm, fixed in the lab) falls elsewhere: the
situation the gain-map method of Weng et al. (2023) needs. Each catalog entry
``gainmap_pos<k>`` carries its PONI (``poni=``, relative to the catalog).

Counts are ``Poisson(exposure * I(2theta) * P(2theta, chi) * dOmega * gain)``:
I is the amorphous radial profile (counts/s at the PONI pixel), P pyFAI's
polarisation factor with `POLARIZATION_FACTOR` (``0.5 (1 + cos^2 2t - f cos 2chi
sin^2 2t)``), dOmega pyFAI's solid angle relative to the PONI pixel
(``(dist / |pixel - sample|)^3``), gain the per-pixel gain map. Dead pixels read
-1 (flagged by the detector) or 0 (not flagged); a few damaged pixels have a gain
far above 1. 2-theta and chi follow pyFAI's geometry (`pyfai_geometry`).

Ground truth (``gainmap/truth.json`` and ``truth.npz``):

truth.json
    ``positions``: list of PONI dicts (Distance, Poni1, Poni2, Rot1-3 in m and
    rad, PixelSize1/2, Wavelength in m) in position order; ``energy`` (eV);
    ``exposure_s``; ``frames_per_position``; ``polarization_factor``;
    ``profile_formula`` (text); ``damaged`` [[y, x], ...].
truth.npz
    ``gain`` (y, x) float64 (0 at dead pixels); ``dead`` (y, x) bool;
    ``damaged`` (y, x) bool; ``profile_tth_deg`` (n,), ``profile_intensity``
    (n,) counts/s: I(2theta) on a fine grid; ``tth_deg`` (position, y, x) and
    ``chi_deg`` (position, y, x) float32; ``beamstop`` (position, y, x) bool;
    ``polarization`` and ``solid_angle`` (position, y, x) float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from beamcat.catalog.demo._common import Entry, write_truth

SHAPE = (195, 487)
PIXEL = 172e-6  # m
ENERGY = 20000.0  # eV
WAVELENGTH = 12398.419843320026 / ENERGY * 1e-10  # m
EXPOSURE = 10.0  # s
FRAMES_PER_POSITION = 2
POLARIZATION_FACTOR = 0.99
POSITIONS = tuple(
    {
        "PixelSize1": PIXEL,
        "PixelSize2": PIXEL,
        "Distance": 0.2,
        "Poni1": round(0.0155 + 0.0004 * k, 6),
        "Poni2": round(0.010 + 0.006 * k, 6),
        "Rot1": 0.012,
        "Rot2": -0.008,
        "Rot3": 0.0,
        "Wavelength": WAVELENGTH,
    }
    for k in range(5)
)
_BEAMSTOP_RADIUS = 2.0e-3  # m at the detector distance
_ARM_HALF_WIDTH = 0.6e-3
_PROFILE_FORMULA = (
    "I = 400 + 1800 exp(-(t-8.6)^2/(2*1.1^2)) + 500 exp(-(t-15.5)^2/(2*2.5^2)) "
    "+ 300 exp(-t/3), t = 2theta in degrees, counts/s"
)


def radial_profile(tth_deg: np.ndarray) -> np.ndarray:
    """Amorphous-scatterer profile I(2theta), counts/s: a broad hump near 8.6 deg (silica-like)."""
    t = np.asarray(tth_deg, dtype=np.float64)
    return (
        400.0
        + 1800.0 * np.exp(-((t - 8.6) ** 2) / (2 * 1.1**2))
        + 500.0 * np.exp(-((t - 15.5) ** 2) / (2 * 2.5**2))
        + 300.0 * np.exp(-t / 3.0)
    )


def pyfai_geometry(shape: tuple[int, int], poni: dict) -> dict[str, np.ndarray]:
    """Per-pixel geometry of a detector with pyFAI's conventions.

    Pixel centres sit at ``(i + 0.5) * PixelSize`` along axis 1 (y, slow) and
    axis 2 (x, fast); positions relative to the PONI are rotated by
    ``R = R3(rot3) R2(rot2) R1(rot1)`` (pyFAI `Geometry.rotation_matrix`: rot1
    and rot2 left-handed, rot3 right-handed) with the sample at distance
    ``Distance`` along the beam.

    Parameters
    ----------
    shape : (int, int)
        Detector shape (y, x).
    poni : dict
        ``Distance, Poni1, Poni2, Rot1, Rot2, Rot3, PixelSize1, PixelSize2`` (m, rad).

    Returns
    -------
    dict
        ``tth`` 2-theta (rad), ``chi`` azimuth ``arctan2(t1, t2)`` (rad),
        ``solid_angle`` relative to the PONI pixel, ``t1, t2, t3`` lab
        coordinates (m; t3 along the beam), all (y, x).
    """
    c1, c2, c3 = np.cos([poni["Rot1"], poni["Rot2"], poni["Rot3"]])
    s1, s2, s3 = np.sin([poni["Rot1"], poni["Rot2"], poni["Rot3"]])
    rot1 = np.array([[1.0, 0.0, 0.0], [0.0, c1, s1], [0.0, -s1, c1]])
    rot2 = np.array([[c2, 0.0, -s2], [0.0, 1.0, 0.0], [s2, 0.0, c2]])
    rot3 = np.array([[c3, -s3, 0.0], [s3, c3, 0.0], [0.0, 0.0, 1.0]])
    rotation = rot3 @ rot2 @ rot1
    p1 = (np.arange(shape[0]) + 0.5)[:, None] * poni["PixelSize1"] - poni["Poni1"]
    p2 = (np.arange(shape[1]) + 0.5)[None, :] * poni["PixelSize2"] - poni["Poni2"]
    p1, p2 = np.broadcast_arrays(p1, p2)
    dist = poni["Distance"]
    t1, t2, t3 = np.einsum("ij,jyx->iyx", rotation, np.stack([p1, p2, np.full(shape, dist)]))
    return {
        "tth": np.arctan2(np.hypot(t1, t2), t3),
        "chi": np.arctan2(t1, t2),
        "solid_angle": (dist / np.sqrt(dist**2 + p1**2 + p2**2)) ** 3,
        "t1": t1,
        "t2": t2,
        "t3": t3,
    }


def write_poni(path: Path, poni: dict) -> None:
    """Write a pyFAI PONI file (version 1 text, as pyFAI 0.x and Dioptas write it)."""
    lines = [
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis ",
        "# Calibration done at Mon Mar  4 10:00:00 2024 (beamcat demo)",
    ]
    for key in ("PixelSize1", "PixelSize2", "Distance", "Poni1", "Poni2", "Rot1", "Rot2", "Rot3"):
        lines.append(f"{key}: {poni[key]!r}")
    lines += ["SplineFile: None", f"Wavelength: {poni['Wavelength']!r}"]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _gain(rng) -> np.ndarray:
    """Per-pixel gain ~1 +- 3 %: 2 x 8 chip offsets (97 x 60 px chips) and pixel scatter."""
    chips = rng.normal(1.0, 0.012, (2, 8))
    rows = np.minimum(np.arange(SHAPE[0]) // 98, 1)
    cols = np.minimum(np.arange(SHAPE[1]) // 61, 7)
    return chips[rows[:, None], cols[None, :]] * rng.normal(1.0, 0.025, SHAPE)


def _description(frame: int) -> str:
    return "\r\n".join(
        [
            "# Pixel_size 172e-6 m x 172e-6 m",
            "# Silicon sensor, thickness 0.001000 m",
            f"# Exposure_time {EXPOSURE:.7f} s",
            f"# Exposure_period {EXPOSURE + 0.005:.7f} s",
            "# Tau = 124.0e-09 s",
            "# Count_cutoff 1077896 counts",
            f"# Threshold_setting: {ENERGY / 2:.0f} eV",
            f"# Wavelength {WAVELENGTH * 1e10:.5f} A",
            f"# Detector_distance {POSITIONS[0]['Distance']:.5f} m",
            f"# Image_number {frame}",
        ]
    )


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the gain-map sample into `folder` and return its catalog entries."""
    folder.mkdir(parents=True)
    gain = _gain(rng)
    n_dead, n_damaged = 30, 8
    flat_index = rng.choice(gain.size, n_dead + n_damaged, replace=False)
    dead = np.zeros(SHAPE, dtype=bool)
    dead.flat[flat_index[:n_dead]] = True
    damaged = np.zeros(SHAPE, dtype=bool)
    damaged.flat[flat_index[n_dead:]] = True
    gain[damaged] = rng.uniform(1.3, 2.0, n_damaged)
    gain[dead] = 0.0
    flagged = dead & (rng.random(SHAPE) < 0.5)  # the detector's bad-pixel map knows these

    geometry = {k: [] for k in ("tth_deg", "chi_deg", "beamstop", "polarization", "solid_angle")}
    entries = []
    for k, poni in enumerate(POSITIONS, start=1):
        geo = pyfai_geometry(SHAPE, poni)
        cos2 = np.cos(geo["tth"]) ** 2
        pol = 0.5 * (1 + cos2 - POLARIZATION_FACTOR * np.cos(2 * geo["chi"]) * (1 - cos2))
        # beam stop fixed in the lab: a disc on the beam and an arm towards -t1 (detector top)
        radius = np.hypot(geo["t1"], geo["t2"]) * poni["Distance"] / geo["t3"]
        arm = (np.abs(geo["t2"]) < _ARM_HALF_WIDTH) & (geo["t1"] < 0)
        beamstop = (radius < _BEAMSTOP_RADIUS) | arm
        mean = EXPOSURE * radial_profile(np.rad2deg(geo["tth"])) * pol * geo["solid_angle"] * gain
        mean[beamstop] *= 0.02  # air scatter behind the stop
        pos = folder / f"pos{k}"
        pos.mkdir()
        for i in range(FRAMES_PER_POSITION):
            counts = rng.poisson(mean).astype(np.int32)
            counts[flagged] = -1
            tifffile.imwrite(
                pos / f"glass_pos{k}_{i + 1:04d}.tif",
                counts,
                description=_description(i + 1),
                software="tvx-7.3.13-121212",
                metadata=None,
            )
        write_poni(folder / f"pos{k}.poni", poni)
        geometry["tth_deg"].append(np.rad2deg(geo["tth"]).astype(np.float32))
        geometry["chi_deg"].append(np.rad2deg(geo["chi"]).astype(np.float32))
        geometry["beamstop"].append(beamstop)
        geometry["polarization"].append(pol.astype(np.float32))
        geometry["solid_angle"].append(geo["solid_angle"].astype(np.float32))
        entries.append(
            Entry(
                f"gainmap_pos{k}",
                pos,
                "tiff",
                {
                    "instrument": "Pilatus 100K (APS)",
                    "sample": "amorphous silica (glass slide)",
                    "run": f"pos{k}",
                    "description": f"amorphous scatter at detector position {k}; PONI pos{k}.poni",
                },
                {"poni": folder / f"pos{k}.poni"},
            )
        )
    grid = np.linspace(0.0, 25.0, 2501)
    write_truth(
        folder,
        {
            "positions": list(POSITIONS),
            "energy": ENERGY,
            "exposure_s": EXPOSURE,
            "frames_per_position": FRAMES_PER_POSITION,
            "polarization_factor": POLARIZATION_FACTOR,
            "profile_formula": _PROFILE_FORMULA,
            "damaged": np.argwhere(damaged),
        },
        {
            "gain": gain,
            "dead": dead,
            "damaged": damaged,
            "profile_tth_deg": grid,
            "profile_intensity": radial_profile(grid),
            **{k: np.stack(v) for k, v in geometry.items()},
        },
    )
    return entries
