"""Au calibration against planted truth: the demo's Au reference and small synthetic patterns.

What is compared: the fitted ellipse (centre, semi-axes, angle) and reciprocal
pixel size with the ones the generator planted (the demo's ``truth.json``; the
synthetic patterns' own parameters), the corrected radial profile with a
NumPy binning of the demo's own undistorted radius (``truth.npz``, written by
an independent formula), the JSON round trip, and BeamcatErrors for bad input.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.ellipse import elliptical_radius
from beamcat.analyses.stem4d_calibration import (
    AU_REFLECTIONS,
    CAMERA_LENGTHS,
    AuCalibration,
    as_calibration,
    calibrate_au,
    corrected_profile,
    mean_pattern,
    table_pixel_size,
)
from beamcat.catalog.demo import read_truth
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

S = {hkl: 1 / d for hkl, d in AU_REFLECTIONS.items()}


@pytest.fixture(scope="module")
def demo(demo_dir):
    """The demo's Au reference Dataset (catalog entry) and the 4D-STEM sample's truth."""
    ds = beamcat.open_catalog(demo_dir / "catalog.yaml")["stem4d_au_reference"].read()
    return ds, *read_truth(demo_dir / "stem4d")


def synthetic(shape=(144, 144), *, x0=70.3, y0=74.8, ratio=0.96, theta=-1.2, pixel=0.0145):
    """A noise-free Au pattern: direct beam, smooth background, the four rings (0.8 px wide),
    and two hot pixels far brighter than the beam (as Merlin detectors have)."""
    r = elliptical_radius(shape, x0=x0, y0=y0, a=1.0, b=ratio, theta=theta)
    rings = sum(np.exp(-((r - s / pixel) ** 2) / (2 * 0.8**2)) for s in S.values())
    pattern = 500 * np.exp(-r / 2.0) + 5 * np.exp(-r / 40.0) + 3 * rings
    pattern[3, 5] = pattern[-10, 20] = 1e5
    return pattern


def test_demo_reference_recovers_the_planted_ellipse(demo):
    # the tolerances: a, b 0.5 %, theta 1 deg, centre 0.3 px, pixel size 0.5 %;
    # the fit does ~50x better on the demo (Poisson noise of 64 frames averaged)
    ds, truth, _ = demo
    cal = calibrate_au(ds, voltage_kv=300)
    e = truth["ellipse"]
    assert abs(cal.x0 - e["x0"]) < 0.3 and abs(cal.y0 - e["y0"]) < 0.3
    assert cal.a == pytest.approx(e["a"], rel=5e-3) and cal.b == pytest.approx(e["b"], rel=5e-3)
    assert abs(np.degrees(cal.theta - e["theta"])) < 1.0
    assert cal.reciprocal_pixel_size == pytest.approx(truth["reciprocal_pixel_size"], rel=5e-3)
    assert (cal.reflection, cal.voltage_kv, cal.camera_length_cm) == ("220", 300, None)


@pytest.mark.parametrize("hkl", ["111", "200", "311"])
def test_demo_every_reflection_gives_the_same_calibration(demo, hkl):
    # the same tolerances on each ring; a and b are that ring's planted semi-axes
    ds, truth, _ = demo
    cal = calibrate_au(mean_pattern(ds), voltage_kv=300, reflection=hkl)
    ring = truth["rings"][hkl]
    assert cal.a == pytest.approx(ring["radius_px"], rel=5e-3)
    assert cal.b == pytest.approx(ring["radius_px_minor"], rel=5e-3)
    assert abs(np.degrees(cal.theta - truth["ellipse"]["theta"])) < 1.0
    assert cal.reciprocal_pixel_size == pytest.approx(truth["reciprocal_pixel_size"], rel=5e-3)


def test_dataset_dataarray_and_mean_pattern_agree(demo):
    # calibrate computes the mean itself: a Dataset, its signal, or the (y, x) mean give one answer
    ds, _, _ = demo
    from_ds = calibrate_au(ds, voltage_kv=300)
    assert calibrate_au(ds["counts"], voltage_kv=300) == from_ds
    assert calibrate_au(ds["counts"].mean(("scan_y", "scan_x")), voltage_kv=300) == from_ds


@pytest.mark.parametrize(
    "planted",
    [
        {},
        {"theta": 1.5, "ratio": 0.93},  # near the +-pi/2 wrap, 7 % ellipticity
        {"theta": 0.0, "ratio": 1.0, "x0": 66.0, "y0": 80.0},  # a circle
        {"theta": 0.3, "pixel": 0.011},  # the rings scale with the pixel size
    ],
)
def test_synthetic_geometry_is_recovered(planted):
    # noise-free: the fit is limited by the sampling only (0.25 px steps, 2 deg sectors);
    # measured errors are below a fifth of these tolerances
    p = {"x0": 70.3, "y0": 74.8, "ratio": 0.96, "theta": -1.2, "pixel": 0.0145, **planted}
    cal = calibrate_au(synthetic(**p), voltage_kv=200)
    a = S["220"] / p["pixel"]
    assert (cal.x0, cal.y0) == pytest.approx((p["x0"], p["y0"]), abs=0.02)
    assert (cal.a, cal.b) == pytest.approx((a, a * p["ratio"]), rel=1e-3)
    if p["ratio"] < 1:  # theta of a circle is any
        assert np.degrees(cal.theta - p["theta"]) == pytest.approx(0, abs=0.3)
    assert cal.reciprocal_pixel_size == pytest.approx(p["pixel"], rel=1e-3)


def test_the_camera_length_table_gives_the_start():
    # ePSIC's table (algorithms.md seed 003); the start limits the search to +-25 %:
    # 300 kV CL 20 cm is 0.0093, so a pattern at 0.0098 is found from it
    assert CAMERA_LENGTHS[300] == {20: 0.0093, 40: 0.0049, 80: 0.0024}
    assert table_pixel_size(200, 100) == 0.0009
    pattern = synthetic((192, 192), x0=96.0, y0=95.0, pixel=0.0098)
    cal = calibrate_au(pattern, voltage_kv=300, camera_length_cm=20)
    assert cal.reciprocal_pixel_size == pytest.approx(0.0098, rel=1e-3)
    assert cal.camera_length_cm == 20
    with pytest.raises(OptionError, match=r"no starting pixel size for 300 kV, camera length 30"):
        calibrate_au(pattern, voltage_kv=300, camera_length_cm=30)


def test_bad_options_name_what_was_expected():
    pattern = synthetic()
    with pytest.raises(OptionError, match=r"reflection='222': not an Au reflection.*'311'"):
        calibrate_au(pattern, voltage_kv=300, reflection="222")
    with pytest.raises(OptionError, match="start_pixel_size must be a positive number"):
        calibrate_au(pattern, voltage_kv=300, start_pixel_size=-0.01)
    with pytest.raises(OptionError, match=r"voltage_kv must be a positive number \(kV\)"):
        calibrate_au(pattern, voltage_kv="300kV")
    with pytest.raises(OptionError, match=r"expected a \(y, x\) pattern, got shape \(3,\)"):
        calibrate_au(np.ones(3), voltage_kv=300)


def test_a_ring_outside_the_frame_is_refused():
    # the 220 ring of a 0.004 1/A per px pattern is 173 px out: the 64 x 64 frame misses it
    pattern = synthetic((64, 64), x0=32.0, y0=32.0, pixel=0.004)
    with pytest.raises(FormatError, match=r"Au 220 ring .* lies outside the 64 x 64 frame"):
        calibrate_au(pattern, voltage_kv=300, start_pixel_size=0.004)


def test_a_pattern_without_rings_is_refused():
    # Poisson noise about a direct beam: no ring stands 5 standard errors above the background
    rng = np.random.default_rng(1)
    r = elliptical_radius((128, 128), x0=64, y0=64, a=1, b=1, theta=0)
    noise = rng.poisson(5 + 500 * np.exp(-r / 2.0)).astype(float)
    with pytest.raises(FormatError, match=r"reference: .*Au 220 ring"):
        calibrate_au(noise, voltage_kv=300)


def test_a_real_mib_without_au_rings_is_refused(shared_data):
    # no real MIB in ../shared/data holds Au rings; the rosettasciio 4x2 scan (a direct beam
    # at the frame's edge with streaks) must be refused, with the file named, not fitted
    path = shared_data / "rosettasciio_mib" / "Merlin_navigation4x2_ROI" / "001_4x2_6bit.mib"
    with pytest.raises(FormatError, match=r"001_4x2_6bit\.mib\): no Au 220 ring found"):
        calibrate_au(beamcat.open_dataset(path), voltage_kv=300)


# ------------------------------------------------------------------ the JSON and attrs


def test_save_load_round_trip_writes_epsic_keys(tmp_path):
    cal = AuCalibration(64.3, 63.1, 47.8, 46.4, 0.52, 0.0145, "220", 300, 20)
    path = cal.save(tmp_path / "au.json")
    doc = json.loads(path.read_text())
    assert doc["reciprocal_space_pix"] == 0.0145
    # py4DSTEM's axes (as ePSIC's notebooks write it): row first, angle from the row axis
    np.testing.assert_allclose(doc["p_ellipse"], [63.1, 64.3, 47.8, 46.4, np.pi / 2 - 0.52])
    back = AuCalibration.load(path)
    assert back == dataclasses.replace(cal, theta=back.theta)
    assert back.theta == pytest.approx(0.52, abs=1e-15)
    assert [p.name for p in tmp_path.iterdir()] == ["au.json"]  # atomic: no temp file left
    # ePSIC's own JSON (the two keys only) loads, optional fields unset
    path.write_text(json.dumps({k: doc[k] for k in ("reciprocal_space_pix", "p_ellipse")}))
    back = AuCalibration.load(path)
    assert back == AuCalibration(64.3, 63.1, 47.8, 46.4, back.theta, 0.0145)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json at all", "not a calibration JSON"),
        ('{"p_ellipse": [1, 2, 3, 4, 0]}', "expected a JSON object with reciprocal_space_pix"),
        ('{"reciprocal_space_pix": 0.01}', "and p_ellipse"),
        ('{"reciprocal_space_pix": 0.01, "p_ellipse": [1, 2, 3]}', r"\[x0, y0, a, b, theta\]"),
        ('{"reciprocal_space_pix": "x", "p_ellipse": [1, 2, 3, 4, 0]}', "must be a number"),
        ('{"reciprocal_space_pix": 0.01, "p_ellipse": [1, 2, -3, 4, 0]}', "a must be > 0"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_load_names_the_file_and_what_is_missing(tmp_path, content, match):
    path = tmp_path / "au.json"
    path.write_text(content)
    with pytest.raises(FormatError, match=match) as info:
        AuCalibration.load(path)
    assert str(path) in str(info.value)


def test_load_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"nope\.json: calibration JSON not found"):
        AuCalibration.load(tmp_path / "nope.json")


def test_attrs_round_trip_and_missing_keys():
    cal = AuCalibration(1.0, 2.0, 3.0, 2.5, 0.1, 0.02, reflection="111")
    assert cal.to_attrs() == {
        "x0": 1.0,
        "y0": 2.0,
        "a": 3.0,
        "b": 2.5,
        "theta": 0.1,
        "reciprocal_pixel_size": 0.02,
        "reflection": "111",
    }
    # a Dataset's attrs as the catalog's calibration= option writes them (with a source)
    ds = xr.Dataset(attrs={"calibration": {**cal.to_attrs(), "source": "/x/au.json"}})
    assert AuCalibration.from_attrs(ds.attrs) == cal
    with pytest.raises(FormatError, match=r"scan\.mib: calibration lacks \['theta'\]"):
        AuCalibration.from_attrs(
            {"x0": 1, "y0": 2, "a": 3, "b": 2, "reciprocal_pixel_size": 1}, source="scan.mib"
        )
    with pytest.raises(FormatError, match="expected a calibration dict"):
        AuCalibration.from_attrs({"calibration": "au.json"})


def test_as_calibration_takes_whatever_names_one(tmp_path):
    cal = AuCalibration(1.0, 2.0, 3.0, 2.5, 0.1, 0.02)
    path = cal.save(tmp_path / "au.json")
    doc = json.loads(path.read_text())  # ePSIC's JSON, parsed
    for named in (cal, path, str(path), doc, cal.to_attrs(), {"calibration": cal.to_attrs()}):
        got = as_calibration(named)  # theta through the JSON's π/2 - θ: to rounding
        assert got == dataclasses.replace(cal, theta=got.theta)
        assert got.theta == pytest.approx(cal.theta, abs=1e-15)
    with pytest.raises(OptionError, match=r"scan: expected an AuCalibration.*got int"):
        as_calibration(3, source="scan")


# ------------------------------------------------------------------ the corrected profile


def test_corrected_profile_bins_the_demos_undistorted_radius(demo):
    # the demo's truth.npz radius_px is its own closed form of the corrected radius: binning
    # the mean pattern by it with NumPy gives the same means (to float64 rounding)
    ds, truth, arrays = demo
    pattern = mean_pattern(ds)
    cal = AuCalibration(**truth["ellipse"], reciprocal_pixel_size=truth["reciprocal_pixel_size"])
    profile = corrected_profile(pattern, cal)
    bins = np.rint(arrays["radius_px"]).astype(int).ravel()
    count = np.bincount(bins)
    np.testing.assert_allclose(profile.values, np.bincount(bins, pattern.ravel()) / count)
    np.testing.assert_array_equal(profile["count"].values, count)
    np.testing.assert_allclose(profile.s.values, np.arange(len(count)) * 0.0145)
    # with half-pixel bins each Au ring peaks in the bin of its s (the rings are 0.83 px wide)
    fine = corrected_profile(pattern, cal, step=0.5)
    for hkl in ("200", "220", "311"):
        near = fine.sel(s=slice(S[hkl] - 0.02, S[hkl] + 0.02))
        peak = float(near.s[int(np.argmax(near.values))])
        assert peak == pytest.approx(S[hkl], abs=0.5 * 0.5 * 0.0145)
