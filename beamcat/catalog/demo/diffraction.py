"""X-ray powder diffraction demo: a CeO2 calibrant image on a Pilatus 200K, with its PONI.

What is written (under ``diffraction/``): ``CeO2_Pilatus200K.tif``, one int32
image of 407 x 487 pixels (172 um; two Pilatus modules with the 17-row gap
between them reading -2, as camserver writes it), and ``CeO2_Pilatus200K.poni``,
the pyFAI PONI (version 2 text, written by pyFAI) of the geometry it was made
with. The catalog entry ``diffraction_ceo2`` opens the image with ``poni=``
set, so ``ds.diffraction`` finds the geometry without arguments.

The image is pyFAI's own synthetic calibrant image
(``Calibrant.fake_calibration_image``: the CeO2 rings at `ENERGY` with a
Gaussian width of `RING_FWHM_DEG`, solid angle applied) scaled to
`PEAK_COUNTS` above a flat `BACKGROUND_COUNTS`, with Poisson noise. The beam
centre lies on the detector (near row 105, column 151) and the detector is
slightly tilted, so full rings and arcs up to 2θ ≈ 28.6° (14 CeO2 reflections)
are seen: enough for `calibrate` to refine every parameter.

Ground truth (``diffraction/truth.json`` and ``truth.npz``):

truth.json
    ``poni``: pyFAI's configuration of the geometry (``dist``, ``poni1``,
    ``poni2`` in m, ``rot1-3`` in rad, ``detector``, ``wavelength`` in m);
    ``calibrant`` ("CeO2"); ``energy`` (eV); ``ring_fwhm_deg``;
    ``peak_counts``, ``background_counts``; ``ring_tth_deg``: 2θ of the
    reflections that fall on the detector (deg, pyFAI's CeO2 d-spacings).
truth.npz
    ``expected`` (y, x) float32: the noise-free counts (0 in the gap);
    ``gap`` (y, x) bool: the module gap (pixels reading -2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from beamcat.catalog.demo._common import Entry, write_pyfai_poni, write_truth

DETECTOR = "Pilatus200k"
SHAPE = (407, 487)
ENERGY = 30000.0  # eV
WAVELENGTH = 12398.419843320026 / ENERGY * 1e-10  # m
CALIBRANT = "CeO2"
#: pyFAI configuration of the demo geometry (m, rad)
PONI = {
    "detector": DETECTOR,
    "dist": 0.15,
    "poni1": 0.018,
    "poni2": 0.026,
    "rot1": 0.012,
    "rot2": -0.02,
    "rot3": 0.0,
    "wavelength": WAVELENGTH,
}
RING_FWHM_DEG = 0.06
PEAK_COUNTS = 2000.0
BACKGROUND_COUNTS = 30.0
GAP_VALUE = -2
IMAGE_NAME = "CeO2_Pilatus200K"


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the diffraction sample into `folder` and return its catalog entries."""
    from pyFAI.calibrant import get_calibrant

    folder.mkdir(parents=True)
    poni = folder / f"{IMAGE_NAME}.poni"
    ai = write_pyfai_poni(poni, PONI)
    calibrant = get_calibrant(CALIBRANT)
    calibrant.wavelength = WAVELENGTH
    rings = calibrant.fake_calibration_image(ai, shape=SHAPE, resolution=RING_FWHM_DEG)
    gap = np.asarray(ai.detector.mask, dtype=bool)
    expected = np.where(gap, 0.0, BACKGROUND_COUNTS + PEAK_COUNTS * rings)
    counts = rng.poisson(expected).astype(np.int32)
    counts[gap] = GAP_VALUE
    tifffile.imwrite(
        folder / f"{IMAGE_NAME}.tif",
        counts,
        description=(
            "# Pixel_size 172e-6 m x 172e-6 m\r\n# Silicon sensor, thickness 0.001000 m\r\n"
            f"# Wavelength {WAVELENGTH * 1e10:.5f} A\r\n# Detector_distance {PONI['dist']:.5f} m"
        ),
        software="tvx-7.3.13-121212",
        metadata=None,
    )
    tth = ai.array_from_unit(SHAPE, "center", "2th_deg", scale=True)
    ring_tth = np.rad2deg(np.asarray(calibrant.get_2th(), dtype=np.float64))
    write_truth(
        folder,
        {
            "poni": ai.get_config(),
            "calibrant": CALIBRANT,
            "energy": ENERGY,
            "ring_fwhm_deg": RING_FWHM_DEG,
            "peak_counts": PEAK_COUNTS,
            "background_counts": BACKGROUND_COUNTS,
            "ring_tth_deg": ring_tth[(ring_tth > tth.min()) & (ring_tth < tth.max())],
        },
        {"expected": expected.astype(np.float32), "gap": gap},
    )
    return [
        Entry(
            "diffraction_ceo2",
            folder / f"{IMAGE_NAME}.tif",
            "tiff",
            {
                "instrument": "Pilatus 200K (synthetic, 30 keV)",
                "sample": "CeO2 calibrant (NIST SRM 674b-like)",
                "run": IMAGE_NAME,
                "description": f"CeO2 powder rings for calibration; PONI {poni.name}",
            },
            {"poni": poni},
        )
    ]
