"""The 4D-STEM demo sample's simultaneous EDX map, as an Oxford AZtec RPL/RAW export.

`stem4d.write` calls `write` with the sample's maps, so the EDX map sees the
same Au nanoparticles and carbon thickness as the 4D-STEM scan, position by
position (32 x 32, the scan's shape once fly-back frames are dropped).
Written with `beamcat.catalog.edx.write_edx` (``record-by image``, as AZtec
exports) to ``stem4d/edx/20230510_101500_edx.rpl`` + ``.raw``.

Every spectrum is ``Poisson(continuum(E) * (t + f_Au * Z_Au / Z_C) + t * C Ka
+ f_Au * (Au Ma + Au La + Au Lb) + Cu Ka + Cu La)``, with ``f_Au`` and ``t``
the ``au_fraction`` and ``thickness`` maps of ``truth.npz``: a Kramers-like
continuum ``1 / E`` cut at low energy by the detector window, and Gaussian
lines of `LINE_COUNTS` counts each at unit weight, whose FWHM follows the
detector's 130 eV at Mn Ka (``FWHM^2 = 130^2 + 2.5 (E - 5898.8 eV)``, eV). The
Cu lines are the same everywhere (stray X-rays from the Cu grid). Ground truth
stays in the sample's ``truth.json`` (``edx``: energy axis, line energies and
counts, resolution) and ``truth.npz`` (``au_fraction``, which the Au map
follows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beamcat.catalog.demo._common import Entry

CHANNELS, KEV_PER_CHANNEL = 1024, 0.02  # 0-20.48 keV
RESOLUTION_EV = 130.0  # FWHM at Mn Ka
BEAM_KEV, LIVE_TIME = 300.0, 0.05  # s per position
#: line energies (keV, X-ray Data Booklet Table 1-2) and counts per position at unit weight
LINE_COUNTS = {
    "C_Ka": (0.277, 300.0),
    "Au_Ma": (2.1229, 90.0),
    "Au_La": (9.7133, 120.0),
    "Au_Lb": (11.4423, 50.0),
    "Cu_La": (0.9297, 4.0),
    "Cu_Ka": (8.0478, 10.0),
}
CONTINUUM = 1.5  # counts per channel at 1 keV for unit carbon thickness
Z_RATIO = 79 / 6  # Au over C: the continuum grows with Z (Kramers)


def _peak(energy: np.ndarray, centre: float) -> np.ndarray:
    """Unit-area Gaussian line at `centre` (keV) on the channel grid, counts per channel."""
    fwhm = np.sqrt(RESOLUTION_EV**2 + 2.5 * (centre * 1e3 - 5898.8)) * 1e-3
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    return (
        KEV_PER_CHANNEL
        * np.exp(-0.5 * ((energy - centre) / sigma) ** 2)
        / (sigma * np.sqrt(2 * np.pi))
    )


def write(
    folder: Path, rng: np.random.Generator, au: np.ndarray, thickness: np.ndarray
) -> tuple[list[Entry], dict]:
    """Write the EDX map of a sample with maps `au` (Au fraction) and `thickness` (scan_y, scan_x).

    Returns
    -------
    entries : list of Entry
        ``stem4d_edx``.
    truth : dict
        The map's parameters, for ``truth.json["edx"]``.
    """
    from beamcat.catalog.edx import write_edx

    energy = np.arange(CHANNELS) * KEV_PER_CHANNEL
    window = 1 - np.exp(-((energy / 0.4) ** 3))  # detector window: no counts near 0 keV
    continuum = CONTINUUM * window / np.maximum(energy, KEV_PER_CHANNEL)
    peaks = {name: c * _peak(energy, e) for name, (e, c) in LINE_COUNTS.items()}
    carbon = continuum + peaks["C_Ka"]
    gold = Z_RATIO * continuum + peaks["Au_Ma"] + peaks["Au_La"] + peaks["Au_Lb"]
    grid = peaks["Cu_Ka"] + peaks["Cu_La"]
    mean = thickness[..., None] * carbon + au[..., None] * gold + grid
    counts = rng.poisson(mean).astype(np.uint16)
    folder.mkdir()
    path = write_edx(
        folder / "20230510_101500_edx.rpl",
        counts,
        energy_offset_kev=0.0,
        energy_scale_kev=KEV_PER_CHANNEL,
        energy_resolution_ev=RESOLUTION_EV,
        beam_energy_kev=BEAM_KEV,
        live_time_s=LIVE_TIME,
        title="EDX map simultaneous with 20230510_101500 (AZtec export)",
    )
    truth = {
        "source": f"{folder.name}/{path.name}",
        "scan_shape": list(au.shape),
        "channels": CHANNELS,
        "kev_per_channel": KEV_PER_CHANNEL,
        "resolution_mnka_ev": RESOLUTION_EV,
        "lines": {name: {"energy_kev": e, "counts": c} for name, (e, c) in LINE_COUNTS.items()},
        "au_map_follows": "truth.npz au_fraction",
    }
    metadata = {
        "instrument": "Oxford Instruments EDX, AZtec (ePSIC E02)",
        "run": "20230510",
        "sample": "Au nanoparticles on amorphous carbon",
        "description": "EDX map recorded with the 4D-STEM scan, 32 x 32 positions",
    }
    entries = [Entry("stem4d_edx", path, "edx", metadata)]
    return entries, truth
