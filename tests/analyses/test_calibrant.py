"""Calibrant rings (pyFAI's d-spacings, Bragg's law, contours on the 2θ map) and `calibrate`.

Truth: Bragg's law computed here from pyFAI's d-spacings; pyFAI's own 2θ of a
point (``ai.tth``) for contours; a planted geometry for a synthetic LaB6
image; and the Dioptas PONI of the real CeO2 Pilatus 1M image.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import xarray as xr
from pyFAI.calibrant import get_calibrant
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from beamcat.analyses.calibrant import Calibration, beam_centre, calibrate, ring_contours, rings
from beamcat.analyses.geometry import as_geometry, pixel_array
from beamcat.errors import BeamcatError, OptionError

HC = 12398.419843320026  # eV·Å (CODATA, as pyFAI)
PILATUS_PIXEL = 172e-6


def bragg_deg(d_angstrom, energy_ev):
    return np.degrees(2 * np.arcsin(HC / energy_ev / (2 * np.asarray(d_angstrom))))


def small_geometry(flip=False, shape=(120, 160), **changes):
    """A tilted 200 µm-pixel detector, beam inside it."""
    config = {
        "dist": 0.08,
        "poni1": 0.011,
        "poni2": 0.015,
        "rot1": 0.015,
        "rot2": -0.01,
        "rot3": 0.0,
        "wavelength": 0.7e-10,
        "detector": "Detector",
        "detector_config": {"pixel1": 2e-4, "pixel2": 2e-4, "max_shape": list(shape)},
    }
    return as_geometry({**config, **changes}, flip=flip)


@pytest.fixture(scope="module")
def ceo2(shared_data):
    folder = shared_data / "dioptas"
    image = tifffile.imread(folder / "CeO2_Pilatus1M.tif")
    return image, as_geometry(folder / "CeO2_Pilatus1M.poni", flip=True)


# -- rings -----------------------------------------------------------------------------------


def test_ceo2_rings_are_braggs_law_of_pyfai_d_spacings():
    table = rings("CeO2", 30000.0, n_rings=10)
    d = np.asarray(get_calibrant("CeO2").dspacing[:10])
    # the same d-spacings, and 2θ/q from them by Bragg's law: float64 rounding only
    np.testing.assert_array_equal(table["d"].values, d)
    np.testing.assert_allclose(table["tth"].values, bragg_deg(d, 30000.0), rtol=1e-12)
    np.testing.assert_allclose(table["q"].values, 2 * np.pi / (d / 10), rtol=1e-12)
    assert table["hkl"].values[:3].tolist() == ["(1 1 1)", "(0 0 2)", "(0 2 2)"]
    assert table["ring"].values.tolist() == list(range(10))
    assert (table["tth"].attrs["units"], table["q"].attrs["units"]) == ("deg", "nm^-1")
    assert table["d"].attrs["units"] == "Angstrom"
    assert table.attrs["energy"] == pytest.approx(30000.0, rel=1e-12)
    assert "vertex" not in table.dims  # no geometry: no contours


def test_lab6_rings_up_to_tth_max_any_case_name():
    table = rings("lab6", 17000.0, tth_max=30.0)
    d = np.asarray(get_calibrant("LaB6").dspacing)
    expected = bragg_deg(d[d >= HC / 17000.0 / 2], 17000.0)  # d < λ/2: no diffraction
    expected = expected[expected <= 30.0]
    np.testing.assert_allclose(table["tth"].values, expected, rtol=1e-12)
    assert table.attrs["calibrant"] == "LaB6"
    assert table["hkl"].values[0] == "(1 0 0)"


def test_d_spacings_sorted_merged_and_unreachable_dropped():
    # 1 Å at 10 keV (λ = 1.24 Å): d = 0.5 Å is beyond 2θ = 180° and cannot diffract
    table = rings([2.0, 3.0, 3.0, 0.5], 10000.0)
    np.testing.assert_array_equal(table["d"].values, [3.0, 2.0])
    np.testing.assert_allclose(table["tth"].values, bragg_deg([3.0, 2.0], 10000.0), rtol=1e-12)
    assert table["hkl"].values.tolist() == ["", ""]


def test_energy_from_the_geometry():
    geo = small_geometry()
    np.testing.assert_allclose(
        rings("Si", geometry=geo)["tth"].values, rings("Si", geo.energy)["tth"].values, rtol=1e-12
    )


@pytest.mark.parametrize("flip", [False, True])
def test_contours_lie_on_their_ring_real_pilatus(ceo2, flip):
    image, poni = ceo2
    geo = as_geometry(poni, flip=flip)
    ny = image.shape[0]
    levels = rings("CeO2", geometry=geo, shape=image.shape)["tth"].values
    contours = ring_contours(geo, image.shape, levels)
    assert len(contours) == len(levels) == 17
    for level, lines in zip(levels, contours, strict=True):
        assert lines
        for line in lines:
            x, y = line[:, 0], line[:, 1]
            assert x.min() >= 0 and x.max() <= image.shape[1] - 1
            assert y.min() >= 0 and y.max() <= ny - 1
            # pyFAI's own 2θ at the vertex (rows as the PONI sees them): the contour is a
            # linear interpolation of pixel-centre values, off by far less than the 0.047°
            # one Pilatus pixel spans here
            rows = ny - 1 - y if flip else y
            tth = np.degrees(geo.integrator.tth(rows, x))
            assert np.abs(tth - level).max() < 1e-3


def test_contours_honour_flip():
    shape = (120, 160)
    plain = ring_contours(small_geometry(shape=shape), shape, [5.0, 12.0])
    flipped = ring_contours(small_geometry(flip=True, shape=shape), shape, [5.0, 12.0])
    for a_lines, b_lines in zip(plain, flipped, strict=True):
        assert len(a_lines) == len(b_lines) > 0
        a = np.concatenate(a_lines)
        b = np.concatenate(b_lines)
        # the flipped geometry's contour is the plain one mirrored: y -> ny - 1 - y
        mirrored = np.column_stack([b[:, 0], shape[0] - 1 - b[:, 1]])
        # (as vertex sets: marching squares may start a closed line elsewhere)
        np.testing.assert_array_equal(
            np.unique(a.round(9), axis=0), np.unique(mirrored.round(9), axis=0)
        )


def test_rings_dataset_carries_the_contours_nan_separated():
    shape = (120, 160)
    geo = small_geometry(shape=shape)
    table = rings("LaB6", geometry=geo, shape=shape)
    tth_map = pixel_array(geo, shape, "2th_deg")
    assert table["tth"].max() <= tth_map.max()  # only rings on the detector
    contours = ring_contours(geo, shape, table["tth"].values)
    x, y, owner = (table[k].values for k in ("contour_x", "contour_y", "contour_ring"))
    breaks = np.isnan(x)
    assert breaks.sum() == sum(len(lines) for lines in contours)
    np.testing.assert_array_equal(breaks, np.isnan(y))
    lines = np.split(np.column_stack([x, y]), np.flatnonzero(breaks) + 1)[:-1]
    expected = [line for ring_lines in contours for line in ring_lines]
    for got, want in zip(lines, expected, strict=True):
        np.testing.assert_array_equal(got[:-1], want)
    rings_of_lines = [r for r, ring_lines in enumerate(contours) for _ in ring_lines]
    np.testing.assert_array_equal(owner[breaks], rings_of_lines)
    assert table.attrs["poni_flip"] == 0


@pytest.mark.parametrize("flip", [False, True])
def test_beam_centre_is_where_2theta_is_zero(flip):
    shape = (120, 160)
    # an untilted detector, beam on the centre of pixel (row 30, column 70) in pyFAI's frame
    geo = small_geometry(flip, shape, rot1=0.0, rot2=0.0, poni1=30.5 * 2e-4, poni2=70.5 * 2e-4)
    x, y = beam_centre(geo, shape)
    row, col = np.unravel_index(np.argmin(pixel_array(geo, shape, "2th_deg")), shape)
    assert (x, y) == pytest.approx((col, row), abs=1e-9)
    assert (x, y) == pytest.approx((70, shape[0] - 1 - 30 if flip else 30), abs=1e-9)


# -- calibrate -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_lab6():
    """pyFAI's fake LaB6 image of a planted tilted geometry, stored as Dioptas would flip it."""
    shape = (240, 320)
    ai = AzimuthalIntegrator(
        dist=0.08,
        poni1=0.022,
        poni2=0.030,
        rot1=0.015,
        rot2=-0.01,
        detector=Detector(pixel1=2e-4, pixel2=2e-4, max_shape=shape),
        wavelength=0.7e-10,
    )
    lab6 = get_calibrant("LaB6")
    lab6.wavelength = ai.wavelength
    raw = xr.DataArray(
        lab6.fake_calibration_image(ai, Imax=1000.0, Imin=10.0, resolution=0.05)[::-1],
        dims=("y", "x"),
        attrs={"pixel_size": 2e-4},
    )
    return raw, as_geometry(ai, flip=True)


def test_calibrate_recovers_a_planted_geometry_from_a_beam_centre_start(planted_lab6):
    raw, truth = planted_lab6
    shape = raw.shape
    x, y = beam_centre(truth, shape)
    start = {"distance": 0.082, "centre": (x + 4, y - 4)}  # 2 mm, 4 + 4 px off, no tilt
    state = np.random.get_state()  # noqa: NPY002
    cal = calibrate(raw, "LaB6", energy=truth.energy, start=start, flip=True)
    assert isinstance(cal, Calibration) and cal.geometry.flip
    # reproducible (pyFAI's massif shuffles with NumPy's global generator, seeded for the
    # call) and the caller's generator left as it was
    again = calibrate(raw, "LaB6", energy=truth.energy, start=start, flip=True)
    assert again.geometry == cal.geometry
    xr.testing.assert_identical(again.rings, cal.rings)
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    config = json.loads(cal.geometry.config)
    # massif's peak positions on a synthetic ring carry ~0.1 px of bias; the planted
    # geometry is recovered to a fraction of a pixel (a pixel spans 0.14° of 2θ here)
    assert config["dist"] == pytest.approx(0.08, abs=1e-4)
    assert beam_centre(cal.geometry, shape) == pytest.approx((x, y), abs=0.1)
    error = pixel_array(cal.geometry, shape, "2th_deg") - pixel_array(truth, shape, "2th_deg")
    assert np.abs(error).max() < 0.2 * np.degrees(2e-4 / 0.08)
    assert cal.n_rings == 7 and cal.rms < 0.03


def test_calibrate_max_rings(planted_lab6):
    raw, truth = planted_lab6
    d_spacings = [4.156826, 2.93931985, 2.39994461, 2.0785]
    cal = calibrate(raw.values, d_spacings, start=truth, max_rings=3)
    # the start is the truth; only the three lowest rings are used (LaB6 100, 110, 111 given
    # as d-spacings: no hkl known, ring indices from the lowest angle)
    assert cal.n_rings == 3
    assert sorted(np.unique(cal.rings["ring"].values)) == [0, 1, 2]
    assert cal.rings.attrs["calibrant"] == "d-spacings"
    assert beam_centre(cal.geometry, raw.shape) == pytest.approx(
        beam_centre(truth, raw.shape), abs=0.1
    )


def test_calibrate_ceo2_pilatus_from_3mm_and_10px_off(ceo2):
    """The issue's check: the Dioptas PONI recovered from a start 3 mm and 10 px off."""
    image, poni = ceo2
    config = json.loads(poni.config)
    start = poni.with_(
        dist=config["dist"] + 3e-3,
        poni1=config["poni1"] + 10 * PILATUS_PIXEL,
        poni2=config["poni2"] - 10 * PILATUS_PIXEL,
    )
    cal = calibrate(image, "CeO2", start=start)  # energy: the PONI's wavelength
    refined = json.loads(cal.geometry.config)
    assert cal.geometry.flip and refined["wavelength"] == config["wavelength"]
    # Done means: within 0.1 mm in distance and 0.5 px in centre (the direct beam's
    # position; PONI and rot1/rot2 trade off along a valley of equal fits, so the
    # PONI itself moves ~0.6 px with the rotations while the beam centre stays put)
    assert abs(refined["dist"] - config["dist"]) < 1e-4
    found, expected = beam_centre(cal.geometry, image.shape), beam_centre(poni, image.shape)
    assert np.hypot(found[0] - expected[0], found[1] - expected[1]) < 0.5
    # the whole geometry: every pixel's 2θ within half of the 0.047° one pixel spans
    error = pixel_array(cal.geometry, image.shape, "2th_deg") - pixel_array(
        poni, image.shape, "2th_deg"
    )
    assert np.abs(error).max() < 0.5 * np.degrees(PILATUS_PIXEL / config["dist"])
    # the control points: on the 17 rings of this detector, none on a gap (negative) pixel,
    # residuals as reported and a fraction of a pixel
    points = cal.rings
    assert cal.n_rings == 17 and points.sizes["point"] > 3000
    assert set(np.unique(points["ring"].values)) == set(range(17))
    rows = np.rint(points["y"].values).astype(int)
    cols = np.rint(points["x"].values).astype(int)
    assert (image[rows, cols] >= 0).all()
    assert cal.rms == pytest.approx(np.sqrt(np.mean(points["residual"].values ** 2)))
    assert cal.rms < 0.02
    table = rings("CeO2", geometry=poni, shape=image.shape)
    np.testing.assert_allclose(
        points["tth"].values, table["tth"].sel(ring=points["ring"].values).values
    )
    # each point's residual is pyFAI's 2θ of it (in the flipped frame) minus its ring's
    tth = np.degrees(
        cal.geometry.integrator.tth(image.shape[0] - 1 - points["y"].values, points["x"].values)
    )
    np.testing.assert_allclose(tth - points["tth"].values, points["residual"].values, atol=1e-9)


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_errors():
    geo = small_geometry()
    no_wavelength = small_geometry(wavelength=None)
    image = np.ones((120, 160))
    with pytest.raises(OptionError, match="unknown calibrant 'Unobtainium'.*CeO2"):
        rings("Unobtainium", 10000.0)
    with pytest.raises(OptionError, match="d-spacings must be positive"):
        rings([3.0, -1.0], 10000.0)
    with pytest.raises(OptionError, match="no energy"):
        rings("CeO2")
    with pytest.raises(OptionError, match="no energy.*no wavelength"):
        calibrate(image, "CeO2", start=no_wavelength)
    with pytest.raises(OptionError, match="energy must be a positive"):
        rings("CeO2", -5.0)
    with pytest.raises(OptionError, match="one 2D image"):
        calibrate(np.ones((2, 120, 160)), "CeO2", start=geo)
    with pytest.raises(OptionError, match="unknown calibrant"):
        calibrate(image, "Unobtainium", start=geo)
    with pytest.raises(OptionError, match="the mask is"):
        calibrate(image, "CeO2", start=geo, mask=np.zeros((10, 10), bool))
    with pytest.raises(OptionError, match="beam-centre start"):
        calibrate(image, "CeO2", energy=17000.0, start={"distance": 0.1, "centre": (50, 50)})
    with pytest.raises(BeamcatError, match="describes a"):
        calibrate(np.ones((100, 100)), "CeO2", start=geo)


def test_too_few_control_points_names_the_rings_tried():
    # a flat image has no peaks: nothing to extract on the rings the start predicts
    geo = small_geometry()
    with pytest.raises(OptionError, match=r"too few control points.*rings tried: 0 \(1 1 1\) at"):
        calibrate(np.full((120, 160), 5.0), "CeO2", start=geo)
