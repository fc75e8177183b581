"""The gain map against the demo's planted gain, its steps against NumPy/scipy twins, flatfield.

Demo truth (``gainmap/truth.npz``): the planted gain (chip offsets of ~1.2 % and
2.5 % pixel scatter), dead pixels (-1 or 0), damaged pixels (gain 1.3-2) and the
beam-stop shadow of each of the five positions. The images are Poisson counts of
~5,000-20,000 per pixel and frame, two frames per position: a pixel's gain at
one position is known to ~0.5-1 %, the median of five to ~0.5 %.
"""

from __future__ import annotations

import numpy as np
import pyFAI.integrator.azimuthal
import pytest
import xarray as xr
from scipy import ndimage

import beamcat  # noqa: F401 - registers ds.detector
from beamcat.analyses import _gainmap_steps as steps
from beamcat.analyses.azimuthal import integrate1d
from beamcat.analyses.detector import flatfield
from beamcat.analyses.gainmap import gain_map, position_means, position_spread
from beamcat.catalog import demo
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.demo import gainmap as demo_gainmap
from beamcat.catalog.demo import read_truth
from beamcat.errors import BeamcatWarning, FormatError, OptionError

POSITIONS = range(1, 6)


# --------------------------------------------------------------------------- demo fixtures


@pytest.fixture(scope="module")
def entries(demo_dir):
    catalog = open_catalog(demo_dir / demo.CATALOG_NAME)
    return [catalog[f"gainmap_pos{k}"].read() for k in POSITIONS]


@pytest.fixture(scope="module")
def truth(demo_dir):
    return read_truth(demo_dir / "gainmap")


@pytest.fixture(scope="module")
def ponis(demo_dir):
    return [demo_dir / "gainmap" / f"pos{k}.poni" for k in POSITIONS]


@pytest.fixture(scope="module")
def unfiltered(entries, truth):
    # the entries carry their PONI (poni= in the catalog): no geometries needed
    return gain_map(entries, polarization_factor=truth[0]["polarization_factor"], median_window=1)


@pytest.fixture(scope="module")
def filtered(entries, truth):
    return gain_map(entries, polarization_factor=truth[0]["polarization_factor"], median_window=3)


def _compared(truth) -> np.ndarray:
    """Pixels the issue's criterion covers: seen by >= 2 positions (planted shadows), not dead."""
    _, arrays = truth
    return ((~arrays["beamstop"]).sum(axis=0) >= 2) & ~arrays["dead"]


def _relative_rms(found: np.ndarray, planted: np.ndarray) -> float:
    """RMS of found / planted - 1, both scaled to median 1 (a gain is relative)."""
    found, planted = found / np.median(found), planted / np.median(planted)
    return float(np.sqrt(np.mean((found / planted - 1) ** 2)))


# --------------------------------------------------------------------------- demo truth


def test_gain_recovers_the_planted_gain_within_1_percent(unfiltered, truth):
    # median filter off: the demo's gain has real pixel-to-pixel scatter a filter would remove.
    # Expected error ~0.5 % (Poisson noise of the median of 5 positions, see the module doc)
    _, arrays = truth
    compared = _compared(truth)
    gain = unfiltered.gain.values
    assert np.isfinite(gain[compared]).all()
    rms = _relative_rms(gain[compared], arrays["gain"][compared])
    assert rms < 0.01, rms
    assert unfiltered.gain.attrs["units"] == "1"
    assert np.nanmedian(gain) == pytest.approx(1.0)
    np.testing.assert_allclose(unfiltered.correction.values, 1 / gain, equal_nan=True)


def _planted_filtered(arrays) -> np.ndarray:
    """The planted gain median-filtered as the issue says: 3 x 3 over non-damaged, non-dead
    pixels (NaN left out, scipy's generic_filter with nanmedian), damaged pixels keep theirs."""
    planted = np.where(arrays["dead"] | arrays["damaged"], np.nan, arrays["gain"])
    smooth = ndimage.generic_filter(planted, np.nanmedian, size=3, mode="constant", cval=np.nan)
    return np.where(arrays["damaged"], arrays["gain"], smooth)


def test_filtered_gain_matches_the_planted_gain_filtered_the_same_way(filtered, truth):
    _, arrays = truth
    compared = _compared(truth)
    rms = _relative_rms(filtered.gain.values[compared], _planted_filtered(arrays)[compared])
    assert rms < 0.01, rms  # the filter also averages the noise: ~0.3 %
    assert filtered.attrs["median_window"] == 3


def test_damaged_pixels_found_and_dead_pixels_invalid(unfiltered, filtered, truth):
    _, arrays = truth
    planted = arrays["damaged"]
    for gm in (unfiltered, filtered):
        found = gm.damaged.values
        assert found[planted].mean() >= 0.9  # recall
        assert (found & ~planted).sum() / (~planted).sum() < 1e-3  # false positives
        assert not gm.valid.values[arrays["dead"]].any()
        assert np.isnan(gm.gain.values[arrays["dead"]]).all()
    # damaged pixels keep their measured gain through the filter (1.3-2.0 planted)
    np.testing.assert_array_equal(
        filtered.gain.values[planted], filtered.gain_unfiltered.values[planted]
    )


def test_beamstop_found_at_every_position(unfiltered, truth):
    _, arrays = truth
    found, planted = unfiltered.beamstop.values, arrays["beamstop"]
    assert found.shape == planted.shape
    assert not (planted & ~found).any()  # every shadowed pixel is left out ...
    extra = (found & ~planted).sum(axis=(1, 2)) / planted.sum(axis=(1, 2))
    assert (extra < 0.7).all(), extra  # ... and little more: the 2-pixel margin around it


def test_profiles_flat_window_and_extrapolation(unfiltered, truth):
    scalars, arrays = truth
    gm = unfiltered
    lo, hi = gm.attrs["flat_range"]
    common = gm.attrs["common_range"]
    assert common[0] <= lo < hi <= common[1]
    assert hi > 0.5 * (common[0] + common[1])  # at high 2θ
    assert gm.profile.dims == ("position", "tth") and gm.tth.attrs["units"] == "deg"
    # measured where the position measured, continued everywhere a position measured
    measured = np.isfinite(gm.profile.values)
    np.testing.assert_array_equal(gm.extrapolated.values[measured], gm.profile.values[measured])
    assert np.isfinite(gm.extrapolated.values[:, np.isfinite(gm.expected_profile.values)]).all()
    # the expected profile has the planted profile's shape (I(2θ) at the PONI pixel, x exposure
    # x frames' mean gain): within 1 % over the bins every position measured
    inside = (gm.tth.values > common[0]) & (gm.tth.values < common[1])
    ratio = gm.expected_profile.values[inside] / demo_gainmap.radial_profile(gm.tth.values[inside])
    assert np.std(ratio / np.mean(ratio)) < 0.01


def test_position_spread_drops_after_correction(entries, unfiltered):
    # the same shadows before and after, so only the correction differs
    before = position_spread(entries, polarization_factor=0.99, beamstop=unfiltered.beamstop)
    after = position_spread(entries, gain=unfiltered, polarization_factor=0.99)
    assert before.intensity.dims == ("position", "tth")
    ratio = float(before.rms_spread / after.rms_spread)
    assert ratio >= 5, ratio  # measured ~6.3: chip offsets gone, Poisson noise (0.04 %) left


def test_stacked_dataset_input_equals_list_input(entries, ponis, truth):
    # a (position, frame, y, x) Dataset and a list of entries give the same map (cropped: fast)
    crop = [e.isel(y=slice(0, 96)) for e in entries]
    stacked = xr.concat([e.counts for e in crop], dim="position")
    options = {"polarization_factor": 0.99, "median_window": 3}
    from_list = gain_map(crop, ponis, **options)
    from_stack = gain_map(xr.Dataset({"counts": stacked}), ponis, **options)
    np.testing.assert_array_equal(from_list.gain.values, from_stack.gain.values)


def test_position_means_stay_lazy(entries, raise_if_dask_computes):
    with raise_if_dask_computes():
        means, geometries = position_means(entries)
    assert means.dims == ("position", "y", "x") and means.chunks is not None
    assert len(geometries) == 5
    np.testing.assert_allclose(
        means[0].values, np.where(entries[0].counts >= 0, entries[0].counts, np.nan).mean(0)
    )


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_what_was_expected(entries, ponis, tmp_path):
    with pytest.raises(FormatError, match=r"pos2.*\(195, 400\).*every position"):
        gain_map([entries[0], entries[1].isel(x=slice(0, 400))], ponis[:2])
    with pytest.raises(OptionError, match="2 or more positions"):
        gain_map(entries[:1], ponis[:1])
    with pytest.raises(OptionError, match="5 positions but 2 geometries"):
        gain_map(entries, ponis[:2])
    other = tmp_path / "pilatus1m.poni"
    other.write_text(
        "poni_version: 2\nDetector: Pilatus1M\nDetector_config: {}\nDistance: 0.2\n"
        "Poni1: 0.01\nPoni2: 0.01\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 6.2e-11\n"
    )
    with pytest.raises(FormatError, match=r"\(195, 487\).*pilatus1m.poni.*\(1043, 981\)"):
        gain_map(entries[:2], [ponis[0], other])
    crop = [e.isel(y=slice(0, 48)) for e in entries]  # fast: the checks need no full image
    with pytest.raises(OptionError, match=r"flat_range=\(18, 19\).*every position measured"):
        gain_map(crop, ponis, flat_range=(18, 19))
    # every pixel shadowed at all positions but one: nothing is measured twice
    shadow = np.ones((5, 48, 487), bool)
    shadow[0] = False
    with pytest.raises(OptionError, match="no pixel is seen by 2 or more"):
        gain_map(crop, ponis, beamstop=shadow)
    with pytest.raises(OptionError, match="beamstop: shape"):
        gain_map(crop, ponis, beamstop=np.zeros((3, 3), bool))


def test_empty_bins_warn_and_stay_nan(entries, ponis):
    crop = [e.isel(y=slice(0, 40)) for e in entries]
    with pytest.warns(BeamcatWarning, match="empty 2θ bin"):
        gm = gain_map(crop, ponis, bins=3000, polarization_factor=0.99, beamstop=False)
    assert np.isnan(gm.profile.values).any()
    assert np.isfinite(gm.gain.values).mean() > 0.95


# --------------------------------------------------------------------------- steps vs twins


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # the twin's empty windows
@pytest.mark.parametrize("size", [1, 3, 5])
def test_nan_median_filter_equals_scipy_generic_filter(size):
    rng = np.random.default_rng(size)
    image = rng.normal(1, 0.1, (23, 17))
    image[rng.random(image.shape) < 0.2] = np.nan
    twin = ndimage.generic_filter(image, np.nanmedian, size=size, mode="constant", cval=np.nan)
    # small bands: the band joins are covered too
    np.testing.assert_allclose(steps.nan_median_filter(image, size, band_rows=4), twin)


def test_damaged_pixels_are_the_seeds_rule():
    rng = np.random.default_rng(4)
    gain = rng.normal(1, 0.02, 5000)
    gain[:5] = 1.5
    gain[5:10] = np.nan
    median = np.nanmedian(gain)
    threshold = median + 4 * 1.4826 * np.nanmedian(np.abs(gain - median))
    found, got = steps.damaged_pixels(gain, 4.0)
    assert got == pytest.approx(threshold)
    np.testing.assert_array_equal(found, np.nan_to_num(gain) > threshold)


def test_beamstop_rule_keeps_dead_pixels_out():
    ratio = np.ones((3, 20, 20))
    ratio[0, 5:8, 5:8] = 0.02  # a shadow at position 0 only
    ratio[:, 15, 15] = 0.0  # dead: low at every position
    found = steps.beamstop_from_ratio(ratio)
    shadow = np.zeros((20, 20), bool)
    shadow[5:8, 5:8] = True
    # the shadow grown by 2 pixels; the dead pixel is the detector's, not the stop's
    np.testing.assert_array_equal(found[0], ndimage.binary_dilation(shadow, iterations=2))
    assert not found[1:].any()


# --------------------------------------------------------------------------- flatfield


@pytest.fixture
def frames_and_gain():
    rng = np.random.default_rng(7)
    gain = rng.normal(1.0, 0.05, (40, 50))
    gain[3, 4], gain[5, 6], gain[7, 8] = 0.0, np.nan, -1.0
    frames = xr.DataArray(
        rng.poisson(1000, (3, 40, 50)).astype(np.int32), dims=("frame", "y", "x"), attrs={"a": 1}
    )
    return frames, gain


def test_flatfield_divides_and_nans_invalid_gain(frames_and_gain):
    frames, gain = frames_and_gain
    got = flatfield(frames, gain)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = frames.values / np.where(np.isfinite(gain) & (gain > 0), gain, np.nan)
    np.testing.assert_allclose(got.values, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(got.values[:, [3, 5, 7], [4, 6, 8]]).all()
    assert got.dims == frames.dims and got.attrs["a"] == 1
    assert got.attrs["history"].endswith("flatfield(gain)")


def test_flatfield_is_lazy_and_takes_a_gain_map_dataset(frames_and_gain, raise_if_dask_computes):
    frames, gain = frames_and_gain
    valid = np.ones(gain.shape, bool)
    valid[10, 10] = False
    gm = xr.Dataset({"gain": (("y", "x"), gain), "valid": (("y", "x"), valid)})
    ds = xr.Dataset({"counts": frames.chunk({"frame": 1})}, attrs={"signal": "counts"})
    with raise_if_dask_computes():
        out = ds.detector.flatfield(gm)
    assert out.counts.chunks is not None
    assert np.isnan(out.counts.values[:, 10, 10]).all()
    np.testing.assert_allclose(out.counts.values[:, 0, 0], frames.values[:, 0, 0] / gain[0, 0])
    with pytest.raises(OptionError, match=r"shape \(4, 5\).*\(40, 50\)"):
        flatfield(frames, np.ones((4, 5)))


def test_flatfield_then_integrate_equals_pyfai_flat(demo_dir):
    # pyFAI's flat= convention: integrating flatfield(raw, g) equals integrating raw with flat=g,
    # both with pyFAI (the reference) and with beamcat's integrate1d. pyFAI's flat= gives
    # sum(raw) / sum(n g), flatfield then integrating sum(raw / g) / sum(n): on a noise-free
    # I * n * g both are I per bin, weighted inside the bin by n g or n; they differ by the
    # covariance of I and g in a bin: <= 5 % gain scatter x ~0.3 % change of I over a bin
    poni = demo_dir / "gainmap" / "pos3.poni"
    ai = pyFAI.integrator.azimuthal.AzimuthalIntegrator()
    ai.load(str(poni))
    rng = np.random.default_rng(1)
    gain = rng.normal(1.0, 0.05, (195, 487))
    tth = np.rad2deg(ai.twoThetaArray((195, 487)))
    raw = demo_gainmap.radial_profile(tth) * ai.solidAngleArray((195, 487)) * gain
    corrected = flatfield(xr.DataArray(raw, dims=("y", "x")), gain)
    pyfai = {"npt": 300, "unit": "2th_deg", "method": ("no", "histogram", "cython")}
    ref = ai.integrate1d(raw, flat=gain, **pyfai)
    via_flatfield = ai.integrate1d(corrected.values, **pyfai)
    np.testing.assert_allclose(via_flatfield.intensity, ref.intensity, rtol=5e-4)
    ours = integrate1d(corrected, poni, npt=300)
    ours_flat = integrate1d(xr.DataArray(raw, dims=("y", "x")), poni, npt=300, flat=gain)
    # same sums as pyFAI's, so equal to float32 rounding
    np.testing.assert_allclose(ours.intensity.values, via_flatfield.intensity, rtol=1e-5)
    np.testing.assert_allclose(ours_flat.intensity.values, ref.intensity, rtol=1e-5)


def test_profiles_are_continued_with_the_others_shape_or_the_seeds_line():
    tth = np.linspace(0.0, 10.0, 101)
    shape = 100 + 10 * np.sin(tth)  # not straight anywhere
    scales = np.array([1.0, 2.0, 0.5])
    profiles = scales[:, None] * shape[None, :]
    profiles[1, tth > 6] = np.nan  # position 1 stops at 6 deg, position 2 starts at 3
    profiles[2, tth < 3] = np.nan
    window = (4.0, 5.0)
    extended, scale = steps.extend_profiles(profiles, tth, window)
    # each position's level in the window, relative to their mean level there
    np.testing.assert_allclose(scale, scales / scales.mean())
    # continued as its own level times the shape the others measured there: exact here
    np.testing.assert_allclose(extended, scales[:, None] * shape[None, :])
    linear, _ = steps.extend_profiles(profiles, tth, window, extrapolation="linear")
    above = tth > 6
    slope, offset = np.polyfit(
        tth[(tth >= 4) & (tth <= 5)], profiles[1, (tth >= 4) & (tth <= 5)], 1
    )
    np.testing.assert_allclose(linear[1, above], offset + slope * tth[above])  # the seed's line
    np.testing.assert_allclose(linear[2, tth < 3], extended[2, tth < 3])  # below: the shape
    with pytest.raises(OptionError, match="extrapolation='cubic'"):
        steps.extend_profiles(profiles, tth, window, extrapolation="cubic")


def test_flat_window_is_the_flattest_stretch_at_high_2theta():
    tth = np.linspace(0.0, 20.0, 201)
    profile = 100 + 50 * np.exp(-((tth - 5) ** 2)) + np.where(tth > 12, 0.0, 30 * (12 - tth) / 12)
    profile = profile + 20 * np.exp(-((tth - 17) ** 2) / 0.5)  # a bump in the upper half
    lo, hi = steps.flat_window(np.stack([profile, 1.1 * profile]), tth, (0.0, 20.0))
    assert 12 <= lo < hi < 15.5  # the plateau between the ramp's end and the bump
    assert hi - lo == pytest.approx(1.9, abs=0.11)  # a tenth of the range: 20 bins
