"""Solar Orbiter SPICE demo: an L2 raster of Gaussian EUV lines with known maps.

What is written (under ``spice/``): ``solo_L2_spice-n-ras_20240101T120000_V01_100663296-000.fits``,
a SPICE L2 FITS file (`beamcat.catalog.spice.write_spice_l2`: one float32
IMAGE HDU per window, (time, wavelength, y, x) = (1, n_lambda, 96, 48), WCS
HPLN/HPLT/WAVE/UTC, VARIABLE_KEYWORDS table) with four windows:

- ``O III 703 / Mg IX 706`` (SW): O III 702.70, O III 703.87, Mg IX 706.02;
- ``Ne VIII 770`` (SW); ``C III 977`` (LW); ``O VI 1032`` (LW).

Each spectrum is the SAFFRON model: ``sum_l I_l exp(-(lambda - x_l)^2 / 2 s_l^2) + B``
(I peak radiance in W/m2/sr/nm, x and s in Angstrom), with lines of one ion
sharing velocity and width (tied lines), plus Gaussian noise whose standard
deviation is the SPICE team's noise model, ``sospice.spice_error`` (the "Total"
sigma), evaluated on the noise-free model with the window's header (RADCAL,
XPOSURE, NBIN2/NBIN3, WAVEMIN/WAVEMAX: short-wavelength detector gain 3.58 DN/photon,
long-wavelength 0.57 with noise factor 1.6, dark current and read noise), and
cosmic-ray spikes. The headers carry every keyword ``spice_error`` reads, so
sospice on the file gives the noise it was drawn with (on the noisy data).

Ground truth (``spice/truth.json`` and ``truth.npz``):

truth.json
    ``file``; ``windows``: list of {``name``, ``lines``: [line ids],
    ``wavelength_start``, ``wavelength_step`` (Angstrom)}; ``lines``: {line id:
    {``ion``, ``rest_wavelength`` (Angstrom), ``window``}}; ``noise_model``
    ("sospice.spice_error Total"), ``radcal`` (DN per W/m2/sr/nm), ``exposure`` (s);
    ``speed_of_light`` (km/s).
truth.npz (maps are (y, x) = (96, 48), the data's last two axes)
    ``<line>_intensity`` peak radiance I; ``<line>_center`` x (Angstrom,
    Doppler shifted); ``<line>_width`` s (Angstrom); ``<line>_velocity``
    (km/s, positive = red shift); ``<line>_radiance`` = I s sqrt(2 pi)
    (W/m2/sr, with s in nm);
    ``background_<window index>`` B (y, x); ``sigma_<window index>`` the noise
    standard deviation (wavelength, y, x), float32, W/m2/sr/nm;
    ``spikes`` (n, 6): window index, time, wavelength index, y, x, value added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beamcat.catalog.demo._common import Entry, write_truth

FILE = "solo_L2_spice-n-ras_20240101T120000_V01_100663296-000.fits"
NY, NX = 96, 48  # pixels along the slit, slit positions
C_KMS = 299792.458
EXPOSURE = 30.0  # s per slit position (XPOSURE)
# DN per W/m2/sr/nm: with sospice's gains the noise variance is about 0.024 (SW) / 0.0097 (LW)
# times the signal plus (0.08 W/m2/sr/nm)^2 of dark and read noise
RADCAL = 150.0
# keywords sospice.spice_error reads besides the ones write_spice_l2 writes
NOISE_KEYWORDS = {"SLIT_WID": 4.0, "NBIN2": 1, "NBIN3": 1, "NBIN": 1, "RADCAL": RADCAL}
N_SPIKES = 40
SW_STEP, LW_STEP = 0.097407628, 0.09623  # Angstrom per pixel (CDELT3 of real L2 files x 10)

# Line wavelengths (Angstrom) from SAFFRON's catalogue, saffron/line_catalog/SPICE_SpecLines.json
# (slimguat/SAFFRON @90de426, MIT); ion, peak radiance scale, width (Angstrom) are the demo's.
LINES = {
    "o_iii_1": ("O III", 702.70, 1.2, 0.33),
    "o_iii_2": ("O III", 703.87, 2.0, 0.33),
    "mg_ix_1": ("Mg IX", 706.02, 3.0, 0.36),
    "ne_viii_1": ("Ne VIII", 770.42, 8.0, 0.38),
    "c_iii": ("C III", 977.03, 12.0, 0.40),
    "o_vi_1": ("O VI", 1031.93, 20.0, 0.42),
}
# window name, its lines, first pixel centre (Angstrom), step (Angstrom), number of pixels
WINDOWS = (
    ("O III 703 / Mg IX 706", ("o_iii_1", "o_iii_2", "mg_ix_1"), 701.60, SW_STEP, 60),
    ("Ne VIII 770", ("ne_viii_1",), 768.90, SW_STEP, 32),
    ("C III 977", ("c_iii",), 975.50, LW_STEP, 32),
    ("O VI 1032", ("o_vi_1",), 1030.40, LW_STEP, 32),
)


def _smooth_field(rng, scale: float) -> np.ndarray:
    """A smooth random (y, x) pattern of unit amplitude: a few Gaussian blobs."""
    yy, xx = np.mgrid[:NY, :NX]
    field = np.zeros((NY, NX))
    for _ in range(6):
        y0, x0 = rng.uniform(0, NY), rng.uniform(0, NX)
        w = rng.uniform(0.5, 1.5) * scale
        field += rng.uniform(-1, 1) * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * w**2))
    return field / np.abs(field).max()


def _maps(rng) -> dict[str, np.ndarray]:
    """Intensity, velocity and width maps per line; one ion's lines share velocity and width."""
    ions = {ion for ion, *_ in LINES.values()}
    velocity = {ion: 15.0 * _smooth_field(rng, 12.0) for ion in sorted(ions)}
    broadening = {ion: 1.0 + 0.15 * np.abs(_smooth_field(rng, 15.0)) for ion in sorted(ions)}
    brightness = {ion: 1.0 + 0.8 * np.abs(_smooth_field(rng, 10.0)) for ion in sorted(ions)}
    maps = {}
    for line, (ion, rest, scale, width) in LINES.items():
        maps[f"{line}_intensity"] = scale * brightness[ion]
        maps[f"{line}_velocity"] = velocity[ion]
        maps[f"{line}_center"] = rest * (1.0 + velocity[ion] / C_KMS)
        maps[f"{line}_width"] = width * broadening[ion]
        maps[f"{line}_radiance"] = (
            maps[f"{line}_intensity"] * maps[f"{line}_width"] / 10 * np.sqrt(2 * np.pi)
        )
    return maps


def _sospice_sigma(model: np.ndarray, start: float, step: float) -> np.ndarray:
    """The total noise sigma (sospice, W/m2/sr/nm) of the noise-free `model` (wavelength, y, x).

    `start`, `step`: the window's first pixel centre and step in Angstrom; the header is
    the one `write_spice_l2` writes for the window plus `NOISE_KEYWORDS`.
    """
    from astropy.io import fits
    from sospice import spice_error

    start_nm, step_nm = start / 10, step / 10
    header = fits.Header(
        {
            "LEVEL": "L2",
            "BUNIT": "W m-2 sr-1 nm-1",  # the file's W/m2/sr/nm, spelt as astropy likes it
            "XPOSURE": EXPOSURE,
            "NAXIS3": model.shape[0],
            "WAVEUNIT": -9,
            "WAVEMIN": start_nm - step_nm / 2,
            "WAVEMAX": start_nm + (model.shape[0] - 0.5) * step_nm,
            **NOISE_KEYWORDS,
        }
    )
    return spice_error(data=model.copy(), header=header, verbose=False)[1]["Total"].value


def write(folder: Path, rng: np.random.Generator) -> list[Entry]:
    """Write the SPICE sample into `folder` and return its catalog entries."""
    from beamcat.catalog.spice import write_spice_l2

    folder.mkdir(parents=True)
    maps = _maps(rng)
    windows, spikes, truth_windows = [], [], []
    for w, (name, lines, start, step, n) in enumerate(WINDOWS):
        wave = start + step * np.arange(n)  # Angstrom
        background = 0.15 + 0.1 * _smooth_field(rng, 20.0)
        model = np.broadcast_to(background, (n, NY, NX)).copy()
        for line in lines:
            centre, width = maps[f"{line}_center"], maps[f"{line}_width"]
            model += maps[f"{line}_intensity"] * np.exp(
                -((wave[:, None, None] - centre) ** 2) / (2 * width**2)
            )
        sigma = _sospice_sigma(model, start, step)
        data = model + rng.normal(0.0, 1.0, model.shape) * sigma
        for _ in range(N_SPIKES // len(WINDOWS)):
            k, y, x = rng.integers(0, n), rng.integers(0, NY), rng.integers(0, NX)
            added = rng.uniform(30.0, 300.0)
            data[k, y, x] += added
            spikes.append((w, 0, k, y, x, added))
        maps[f"background_{w}"] = background
        maps[f"sigma_{w}"] = sigma.astype(np.float32)
        windows.append(
            {
                "name": name,
                "data": data[None].astype(np.float32),
                "wavelength_start": start / 10,  # nm
                "wavelength_step": step / 10,
            }
        )
        truth_windows.append(
            {"name": name, "lines": list(lines), "wavelength_start": start, "wavelength_step": step}
        )
    write_spice_l2(
        folder / FILE,
        windows,
        date_obs="2024-01-01T12:00:00.000",
        exposure=EXPOSURE,
        raster_step=4.0,
        pointing=(-250.0, 310.0),
        primary={"STUDY": "beamcat demo raster", "SPIOBSID": 100663296, **NOISE_KEYWORDS},
    )
    write_truth(
        folder,
        {
            "file": FILE,
            "windows": truth_windows,
            "lines": {
                line: {
                    "ion": ion,
                    "rest_wavelength": rest,
                    "window": next(i for i, w in enumerate(WINDOWS) if line in w[1]),
                }
                for line, (ion, rest, *_) in LINES.items()
            },
            "noise_model": "sospice.spice_error Total",
            "radcal": RADCAL,
            "exposure": EXPOSURE,
            "speed_of_light": C_KMS,
        },
        {**maps, "spikes": np.array(spikes)},
    )
    meta = {
        "instrument": "SPICE (Solar Orbiter)",
        "sample": "quiet Sun / active region edge",
        "run": "100663296",
    }
    return [
        Entry(
            f"spice_window{w}",
            folder / FILE,
            "spice",
            {**meta, "description": f"L2 raster, window {name!r}"},
            {"window": w},
        )
        for w, (name, *_) in enumerate(WINDOWS)
    ]
