"""Time-series helpers vs independent NumPy references, laziness, chunking and the demo's truth."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import beamcat
from beamcat.analyses.timeseries import (
    AVOGADRO,
    AVOGADRO_ORIGINAL,
    beer_lambert,
    normalise,
    reduced_transmission,
    savgol,
)
from beamcat.catalog.demo import radiography as demo_radiography
from beamcat.catalog.demo import read_truth
from beamcat.errors import BeamcatWarning, OptionError

RNG = np.random.default_rng(3)
TIMES = pd.date_range("2024-12-13T14:00", periods=200, freq="62s").to_numpy("datetime64[ns]")


def _series(values: np.ndarray, dims=("roi", "time")) -> xr.DataArray:
    coords = {"time": TIMES[: values.shape[-1]]}
    return xr.DataArray(values, dims=dims, coords=coords, name="mean", attrs={"units": "1"})


def _noisy(n_roi=4, n_time=60) -> np.ndarray:
    t = np.linspace(0, 1, n_time)
    return 0.8 - 0.2 / (1 + np.exp(-(t - 0.5) * 12)) + RNG.normal(0, 0.01, (n_roi, n_time))


def _savgol_polyfit(y: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay by definition: least squares per window (edges: mode "interp")."""
    n, half = y.size, window // 2
    out = np.empty(n)
    x = np.arange(window)
    for i in range(n):
        start = min(max(i - half, 0), n - window)  # edges reuse the first/last full window
        coef = np.polynomial.polynomial.polyfit(x, y[start : start + window], order)
        out[i] = np.polynomial.polynomial.polyval(i - start, coef)
    return out


# ----------------------------------------------------------------------------- savgol


@pytest.mark.parametrize(("window", "order"), [(21, 3), (5, 2), (181, 2)])
def test_savgol_equals_least_squares_definition(window, order):
    y = _noisy(n_roi=3, n_time=max(60, window + 10))
    out = savgol(_series(y), window=window, order=order)
    ref = np.stack([_savgol_polyfit(row, window, order) for row in y])
    # both are least-squares fits in float64 (scipy by convolution coefficients, the
    # reference by polyfit per window): they agree to rounding, ~1e-13 on values ~1
    np.testing.assert_allclose(out.values, ref, rtol=0, atol=1e-10)
    assert out.dims == ("roi", "time") and out.attrs["units"] == "1"
    assert f"savgol(window={window}, order={order}" in out.attrs["history"]


def test_savgol_keeps_polynomials_and_float32():
    t = np.linspace(-1, 1, 41)
    cubic = (1 + t - 2 * t**2 + 0.5 * t**3).astype(np.float32)
    out = savgol(xr.DataArray(cubic, dims="time"), window=21, order=3)
    assert out.dtype == np.float32
    # a cubic is its own degree-3 fit: exact up to float32 rounding (~1e-7 relative)
    np.testing.assert_allclose(out.values, cubic, atol=2e-6)


def test_savgol_leaves_nan_samples_out():
    y = _noisy(n_roi=2)
    y[0, [0, 10, 11, 40]] = np.nan
    y[1, 5:50] = np.nan  # 15 valid samples < window: no smoothing possible
    out = savgol(_series(y), window=21, order=3).values
    index = np.arange(y.shape[1])
    valid = ~np.isnan(y[0])
    filled = np.interp(index, index[valid], y[0, valid])
    ref = _savgol_polyfit(filled, 21, 3)
    ref[~valid] = np.nan
    np.testing.assert_allclose(out[0], ref, atol=1e-10)  # NaN positions must match too
    assert np.isnan(out[1]).all()


def test_savgol_rejects_bad_windows():
    data = _series(_noisy(n_time=15))
    with pytest.raises(OptionError, match="longer than the series.*15 samples"):
        savgol(data, window=21)
    with pytest.raises(OptionError, match="odd window"):
        savgol(data, window=10)
    with pytest.raises(OptionError, match="odd window"):
        savgol(data, window=5, order=5)
    with pytest.raises(OptionError, match="not a dimension"):
        savgol(data, dim="frame")


def test_savgol_is_lazy_and_any_chunking_gives_numpy_numbers(raise_if_dask_computes):
    y = _noisy(n_roi=5)
    expected = savgol(_series(y)).values
    with raise_if_dask_computes():
        out = savgol(_series(da.from_array(y, chunks=(2, 7))))
    assert isinstance(out.data, da.Array)
    assert out.chunks == ((2, 2, 1), (60,))  # roi chunks kept, time in one chunk
    # same filter; scipy's convolution sums in a memory-layout-dependent order: a few ulps
    np.testing.assert_allclose(out.values, expected, rtol=1e-14)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 60), st.sampled_from(["roi", "time"]))
def test_savgol_chunking_property(roi_chunk, time_chunk, first):
    y = _noisy(n_roi=5)
    data = _series(y).transpose(first, ...)
    expected = savgol(data).values
    chunked = data.chunk({"roi": roi_chunk, "time": time_chunk})
    np.testing.assert_allclose(savgol(chunked).values, expected, rtol=1e-14)  # a few ulps


# -------------------------------------------------------------------------- normalise


def test_normalise_to_first_frame_and_windows():
    y = _noisy()
    data = _series(y)
    np.testing.assert_allclose(normalise(data).values, y / y[:, :1], rtol=1e-15)
    np.testing.assert_allclose(
        normalise(data, reference=slice(2, 6)).values,
        y / y[:, 2:6].mean(axis=1, keepdims=True),
        rtol=1e-14,  # mean of 4 values: rounding only
    )
    by_time = normalise(data, reference=slice(TIMES[2], TIMES[5]))  # labels: inclusive
    np.testing.assert_allclose(by_time.values, y / y[:, 2:6].mean(axis=1, keepdims=True))
    near = normalise(data, reference=TIMES[7] + np.timedelta64(20, "s"))  # nearest sample
    np.testing.assert_allclose(near.values, y / y[:, 7:8])
    cropped = normalise(data.isel(time=slice(10, None)))  # the original's "first of crop"
    np.testing.assert_allclose(cropped.values, y[:, 10:] / y[:, 10:11])
    assert cropped.attrs["units"] == "1" and cropped.name == "mean"


def test_normalise_zero_reference_is_nan_and_bad_references_raise():
    data = xr.DataArray([[0.0, 1.0], [2.0, 1.0]], dims=("roi", "time"))
    np.testing.assert_array_equal(normalise(data).values, [[np.nan, np.nan], [1.0, 0.5]])
    with pytest.raises(OptionError, match="out of range"):
        normalise(data, reference=5)
    with pytest.raises(OptionError, match="selects no sample"):
        normalise(data, reference=slice(5, 9))
    with pytest.raises(OptionError, match="outside 'time'"):
        normalise(_series(_noisy()), reference=np.datetime64("2030-01-01"))


def test_normalise_is_lazy_and_chunking_invariant(raise_if_dask_computes):
    y = _noisy()
    for chunks in [(1, 60), (4, 7), (3, 1)]:
        with raise_if_dask_computes():
            out = normalise(_series(da.from_array(y, chunks=chunks)), reference=slice(3, 9))
        assert isinstance(out.data, da.Array)
        np.testing.assert_allclose(out.values, y / y[:, 3:9].mean(axis=1, keepdims=True))


# ---------------------------------------------------------------- reduced transmission


def test_reduced_transmission_values_units_and_laziness(raise_if_dask_computes):
    y = _noisy()
    with raise_if_dask_computes():
        out = reduced_transmission(_series(da.from_array(y, chunks=(3, 11))))
    assert isinstance(out.data, da.Array)
    assert out.name == "reduced_transmission" and out.attrs["units"] == "%"
    np.testing.assert_allclose(out.values, (1 - y) * 100, rtol=1e-15)


# ----------------------------------------------------------------------- beer-lambert


def _original_concentration(t, thickness_cm, sigma_barn):
    """04b's expression, literally (operation order and 6.02e23 included)."""
    return 1000 * (-np.log(t) / thickness_cm / sigma_barn / 1e-24 / 6.02e23)


def test_beer_lambert_reproduces_the_original_formula():
    t = np.linspace(0.5, 1.0, 11)
    out = beer_lambert(
        xr.DataArray(t), thickness_cm=1.3, cross_section_barn=2 * 82.574, avogadro=6.02e23
    )
    # same formula, operations grouped differently: a few ulps
    np.testing.assert_allclose(out.values, _original_concentration(t, 1.3, 2 * 82.574), rtol=1e-14)
    assert out.name == "concentration" and out.attrs["units"] == "mmol/cm3"
    exact = beer_lambert(xr.DataArray(t), thickness_cm=1.3, cross_section_barn=2 * 82.574)
    # the exact constant gives concentrations lower by 6.02 / 6.02214076 (0.036 %)
    np.testing.assert_allclose(exact.values, out.values * AVOGADRO_ORIGINAL / AVOGADRO)


def test_beer_lambert_opaque_samples_are_nan_never_inf(raise_if_dask_computes):
    t = np.array([[1.0, 0.5, 0.0, -0.01, np.nan]])
    with pytest.warns(BeamcatWarning, match="2 samples .* T <= 0"):
        eager = beer_lambert(xr.DataArray(t), thickness_cm=1.0, cross_section_barn=100.0)
    assert np.isfinite(eager.values[0, :2]).all() and np.isnan(eager.values[0, 2:]).all()
    with raise_if_dask_computes():  # nothing is computed to count them on dask input
        lazy = beer_lambert(
            xr.DataArray(da.from_array(t, chunks=(1, 2))), thickness_cm=1.0, cross_section_barn=100
        )
    np.testing.assert_array_equal(lazy.values, eager.values)
    with pytest.raises(OptionError, match="thickness_cm=0"):
        beer_lambert(xr.DataArray(t), thickness_cm=0, cross_section_barn=1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 60))
def test_beer_lambert_chunking_property(roi_chunk, time_chunk):
    t = np.clip(_noisy(), 0.05, None)
    expected = _original_concentration(t, 1.3, 165.148)
    out = beer_lambert(
        _series(t).chunk({"roi": roi_chunk, "time": time_chunk}),
        thickness_cm=1.3,
        cross_section_barn=165.148,
        avogadro=AVOGADRO_ORIGINAL,
    )
    np.testing.assert_allclose(out.values, expected, rtol=1e-14)


# ------------------------------------------------------------------- demo ground truth


@pytest.fixture(scope="module")
def radiography(tmp_path_factory):
    """The demo's radiography sample alone (2 s, not the whole demo's 11 s) and its truth."""
    folder = tmp_path_factory.mktemp("demo") / "radiography"
    demo_radiography.write(folder, np.random.default_rng([0, 0]))
    return folder, read_truth(folder)


def test_beer_lambert_gives_the_demo_concentration(radiography):
    _, (truth, arrays) = radiography
    conc = beer_lambert(
        xr.DataArray(arrays["transmission_relative"], dims=("time", "region")),
        thickness_cm=truth["thickness_cm"],
        cross_section_barn=truth["cross_section_barn"],
        avogadro=truth["avogadro"],
    )
    # the truth is T = exp(-c * L * sigma * N_A / 1000), inverted here: rounding only
    np.testing.assert_allclose(conc.values, arrays["concentration"], rtol=1e-9, atol=1e-12)


def test_demo_run_to_concentration_within_one_percent(radiography):
    """Calibrate -> ROI means -> normalise to the first frame -> Beer-Lambert, vs the truth."""
    from beamcat.analyses.calibration import calibrate
    from beamcat.analyses.masters import dark_master, flat_master
    from beamcat.analyses.roi import roi_means

    folder, (truth, arrays) = radiography
    tz = truth["timezone"]
    run = beamcat.open_dataset(
        folder / "run_0042", frame_log=folder / "IMAT00042_log.csv", timezone=tz
    )
    dark = dark_master(beamcat.open_dataset(folder / "dark", timezone=tz).counts)
    flat = flat_master(beamcat.open_dataset(folder / "flat", timezone=tz).counts, dark)
    rois = {name: tuple(truth["rois"][name]) for name in ("bed_top", "bed_middle", "bed_bottom")}
    trans = calibrate(run.counts, dark, flat, air_roi=truth["rois"][truth["air_region"]])
    means = roi_means(trans, rois)["mean"]
    conc = beer_lambert(
        normalise(means),
        thickness_cm=truth["thickness_cm"],
        cross_section_barn=truth["cross_section_barn"],
        avogadro=truth["avogadro"],
    ).transpose("time", "roi")
    expected = arrays["concentration"][:, [truth["regions"].index(r) for r in rois]]
    # per-frame Poisson noise of a ~1560-pixel ROI mean is ~0.2 % in T, i.e. ~0.015 mmol/cm3
    # after Beer-Lambert; the bound is 1 % of the largest concentration (3.0 mmol/cm3)
    peak = expected.max()
    np.testing.assert_allclose(conc.values, expected, rtol=0, atol=0.01 * peak)
