"""ePSIC 4D-STEM demo: a Merlin MIB scan with fly-back frames, and an Au reference.

What is written (under ``stem4d/``), with `beamcat.catalog.mib_write.write_mib`
(12-bit, U16 big-endian frames of 128 x 128, single chip, ``.hdr`` sidecars):

- ``scan/20230510_101500_data.mib``: 32 scan lines of 33 frames; the first frame
  of every line is the fly-back frame, exposed `FLYBACK_EXPOSURE` (10x the
  others), so the scan is 32 x 32 once fly-back frames are dropped. The sample
  is amorphous carbon of varying thickness with a few Au nanoparticles.
- ``au_reference/20230510_100500_data.mib``: 8 x 8 frames of a polycrystalline
  Au calibration grating, no fly-back.
- ``edx/20230510_101500_edx.rpl`` + ``.raw``: the EDX map recorded with the
  scan (`stem4d_edx`), 32 x 32 spectra whose Au lines follow ``au_fraction``.
- ``calibration.json``: the planted calibration as ePSIC's JSON
  (``reciprocal_space_pix``, ``p_ellipse`` [x0, y0, a, b, theta] of the 220
  ring in py4DSTEM's axes: x0 the row, theta from the row axis; ``reflection``),
  which the ``stem4d_scan`` entry attaches
  (``calibration=``, so ``attrs["calibration"]``).

Every pattern is ``Poisson(exposure/1 ms * (disc + t * amorphous(s) + f_Au * rings(s)))``
with s = 1/d (1/Angstrom) = `RECIPROCAL_PIXEL` * r, where r is the radius of a
pixel after undoing the projector's elliptical distortion: a ring of radius r
appears as an ellipse with semi-axis ``a = r`` along angle `THETA` (rad, from
+x towards +y, pixel coordinates) and ``b = r * AXIS_RATIO`` across, centred at
`CENTRE` (x, y; pixel centres at integer indices). Au fcc a = 4.08 A: rings
111, 200, 220, 311 at s = sqrt(h^2+k^2+l^2) / 4.08.

Ground truth (``stem4d/truth.json`` and ``truth.npz``):

truth.json
    ``raw_frames`` (1056), ``raw_scan_shape`` [32, 33], ``scan_shape`` [32, 32]
    (after dropping fly-back frames), ``flyback_column`` 0, ``exposure_s``,
    ``flyback_exposure_s``; ``centre`` [x0, y0] (px); ``ellipse`` {x0, y0, a,
    b, theta} of the 220 ring (px, rad; as ePSIC's ``p_ellipse``);
    ``axis_ratio`` b/a; ``reciprocal_pixel_size`` (1/Angstrom per px, s = 1/d
    along the major axis); ``lattice_angstrom``; ``rings`` {hkl: {d, s,
    radius_px (= a), radius_px_minor (= b)}}; ``disc_radius_px``;
    ``reference`` {``scan_shape`` [8, 8], ``au_fraction`` 1, ``thickness``};
    ``edx`` (the EDX map's energy axis and lines, see `stem4d_edx`).
truth.npz
    ``au_fraction`` (scan_y, scan_x) 0..1 and ``thickness`` (scan_y, scan_x)
    (relative) maps of the scan; ``flyback_frames`` (32,) frame numbers in the
    file; ``radius_px`` (y, x) undistorted radius of each detector pixel;
    ``s`` (n,) with ``amorphous``, ``rings``, ``disc`` (n,): the profiles
    (counts per 1 ms per px at unit weight) on that s grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from beamcat.catalog.demo import stem4d_edx
from beamcat.catalog.demo._common import Entry, write_truth

DET = 128
LINES, LINE_FRAMES = 32, 33  # scan lines, frames per line including the fly-back frame
EXPOSURE, FLYBACK_EXPOSURE = 0.001, 0.010  # s
DEPTH = 12
CENTRE = (64.3, 63.1)  # x, y (px)
THETA = np.pi / 6  # major-axis direction (rad)
AXIS_RATIO = 0.97  # b / a
RECIPROCAL_PIXEL = 0.0145  # 1/Angstrom per px (s = 1/d)
LATTICE = 4.08  # Angstrom, Au fcc
RINGS = {"111": (3, 1.0), "200": (4, 0.5), "220": (8, 0.35), "311": (11, 0.35)}  # h2+k2+l2, weight
RING_SIGMA = 0.012  # 1/Angstrom
DISC_RADIUS = 5.0  # px
DISC_COUNTS, AMORPHOUS_COUNTS, RING_COUNTS = 600.0, 6.0, 25.0  # per 1 ms per px at the peak
START = np.datetime64("2023-05-10T10:15:00", "ns")
REFERENCE_START = np.datetime64("2023-05-10T10:05:00", "ns")
REFERENCE_SHAPE = (8, 8)
REFERENCE_THICKNESS = 0.3


def undistorted_radius() -> np.ndarray:
    """Radius (px) of each detector pixel once the elliptical distortion is undone, (y, x)."""
    yy, xx = np.mgrid[:DET, :DET].astype(np.float64)
    dx, dy = xx - CENTRE[0], yy - CENTRE[1]
    u = dx * np.cos(THETA) + dy * np.sin(THETA)  # along the major axis
    v = -dx * np.sin(THETA) + dy * np.cos(THETA)
    return np.hypot(u, v / AXIS_RATIO)


def profiles(s: np.ndarray) -> dict[str, np.ndarray]:
    """Radial components at unit weight (counts per 1 ms per px) on reciprocal radii `s` (1/A)."""
    rings = sum(
        w * np.exp(-((s - np.sqrt(n) / LATTICE) ** 2) / (2 * RING_SIGMA**2))
        for n, w in RINGS.values()
    )
    disc_s = DISC_RADIUS * RECIPROCAL_PIXEL
    return {
        "disc": DISC_COUNTS / (1 + np.exp((s - disc_s) / (0.7 * RECIPROCAL_PIXEL))),
        "amorphous": AMORPHOUS_COUNTS * np.exp(-((s - 0.45) ** 2) / (2 * 0.09**2))
        + 1.5 * np.exp(-s / 0.3),
        "rings": RING_COUNTS * rings,
    }


def _sample_maps(rng) -> tuple[np.ndarray, np.ndarray]:
    """Au fraction and relative carbon thickness over the 32 x 32 scan."""
    yy, xx = np.mgrid[:LINES, : LINE_FRAMES - 1].astype(np.float64)
    au = np.zeros(yy.shape)
    for _ in range(5):
        cy, cx, r = rng.uniform(4, LINES - 4), rng.uniform(4, LINE_FRAMES - 5), rng.uniform(2, 4)
        au = np.maximum(au, 1 / (1 + np.exp((np.hypot(yy - cy, xx - cx) - r) / 0.5)))
    thickness = 0.8 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    return au, thickness


def _frames(rng, components, au, thickness, exposure):
    """Poisson patterns, one (k, y, x) block per scan line; 12-bit counters saturate at 4095."""
    scale = exposure / 0.001
    for line in range(au.shape[0]):
        mean = components["disc"] + (
            thickness[line, :, None, None] * components["amorphous"]
            + au[line, :, None, None] * components["rings"]
        )
        counts = rng.poisson(mean * scale[line, :, None, None])
        yield np.minimum(counts, 2**DEPTH - 1).astype(np.uint16)


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the 4D-STEM sample into `folder` and return its catalog entries."""
    from beamcat.catalog.mib_write import write_mib

    folder.mkdir(parents=True)
    radius = undistorted_radius()
    components = profiles(radius * RECIPROCAL_PIXEL)
    au, thickness = _sample_maps(rng)
    # the fly-back frame of each line sees the first position of that line again
    au_raw = np.concatenate([au[:, :1], au], axis=1)
    thickness_raw = np.concatenate([thickness[:, :1], thickness], axis=1)
    exposure = np.full((LINES, LINE_FRAMES), EXPOSURE)
    exposure[:, 0] = FLYBACK_EXPOSURE
    stamps = START + (np.concatenate([[0.0], np.cumsum(exposure)[:-1]]) * 1e9).astype("m8[ns]")
    scan = folder / "scan" / "20230510_101500_data.mib"
    scan.parent.mkdir()
    write_mib(
        scan,
        _frames(rng, components, au_raw, thickness_raw, exposure),
        depth=DEPTH,
        exposure=exposure.ravel(),
        timestamps=stamps,
    )

    ref_shape = REFERENCE_SHAPE
    ref_exposure = np.full(ref_shape, EXPOSURE)
    reference = folder / "au_reference" / "20230510_100500_data.mib"
    reference.parent.mkdir()
    write_mib(
        reference,
        _frames(
            rng,
            components,
            np.ones(ref_shape),
            np.full(ref_shape, REFERENCE_THICKNESS),
            ref_exposure,
        ),
        depth=DEPTH,
        exposure=EXPOSURE,
        timestamps=REFERENCE_START
        + (np.arange(ref_exposure.size) * EXPOSURE * 1e9).astype("m8[ns]"),
    )

    edx_entries, edx_truth = stem4d_edx.write(folder / "edx", rng, au, thickness)

    rings = {}
    for hkl, (n, _) in RINGS.items():
        d = LATTICE / np.sqrt(n)
        r = 1 / d / RECIPROCAL_PIXEL
        rings[hkl] = {"d": d, "s": 1 / d, "radius_px": r, "radius_px_minor": r * AXIS_RATIO}
    ellipse = {
        "x0": CENTRE[0],
        "y0": CENTRE[1],
        "a": rings["220"]["radius_px"],
        "b": rings["220"]["radius_px_minor"],
        "theta": THETA,
    }
    calibration = folder / "calibration.json"
    with open(calibration, "w", encoding="utf-8") as f:
        json.dump(
            {
                "reciprocal_space_pix": RECIPROCAL_PIXEL,
                # py4DSTEM's axes, as ePSIC's notebooks write it: row, column, angle from the rows
                "p_ellipse": [CENTRE[1], CENTRE[0], ellipse["a"], ellipse["b"], np.pi / 2 - THETA],
                "reflection": "220",
            },
            f,
            indent=1,
        )
    s_grid = np.linspace(0.0, 1.0, 1001)
    write_truth(
        folder,
        {
            "raw_frames": LINES * LINE_FRAMES,
            "raw_scan_shape": [LINES, LINE_FRAMES],
            "scan_shape": [LINES, LINE_FRAMES - 1],
            "flyback_column": 0,
            "exposure_s": EXPOSURE,
            "flyback_exposure_s": FLYBACK_EXPOSURE,
            "centre": list(CENTRE),
            "ellipse": ellipse,
            "axis_ratio": AXIS_RATIO,
            "reciprocal_pixel_size": RECIPROCAL_PIXEL,
            "lattice_angstrom": LATTICE,
            "rings": rings,
            "disc_radius_px": DISC_RADIUS,
            "edx": edx_truth,
            "reference": {
                "scan_shape": list(ref_shape),
                "au_fraction": 1.0,
                "thickness": REFERENCE_THICKNESS,
            },
        },
        {
            "au_fraction": au,
            "thickness": thickness,
            "flyback_frames": np.arange(LINES) * LINE_FRAMES,
            "radius_px": radius,
            "s": s_grid,
            **profiles(s_grid),
        },
    )
    meta = {"instrument": "Merlin Medipix3 (ePSIC E02)", "run": "20230510"}
    return [
        Entry(
            "stem4d_scan",
            scan,
            "mib",
            {
                **meta,
                "sample": "Au nanoparticles on amorphous carbon",
                "description": "4D-STEM scan, 32 lines x 33 frames with fly-back",
            },
            {"calibration": calibration},
        ),
        Entry(
            "stem4d_au_reference",
            reference,
            "mib",
            {
                **meta,
                "sample": "Au cross grating (calibration)",
                "description": "Au reference for reciprocal pixel size and ellipticity",
            },
            {"scan_shape": list(ref_shape)},
        ),
        *edx_entries,
    ]
