"""Quick looks compute bounded previews that match NumPy on planted data."""

from __future__ import annotations

import dask
import dask.array as da
import holoviews as hv
import numpy as np
import pytest
import xarray as xr

from beamcat.apps.quicklook import (
    plot_quicklook,
    preview_image,
    preview_spectra,
    quicklook,
    quicklook_kind,
    robust_limits,
)
from beamcat.errors import OptionError


def _tracked_stack(frames: np.ndarray, read: list[int]) -> da.Array:
    """A dask (frame, y, x) array, one chunk per frame, recording which frames get read."""

    def load(i):
        read.append(i)
        return frames[i]

    parts = [
        da.from_delayed(dask.delayed(load)(i), frames.shape[1:], frames.dtype)
        for i in range(len(frames))
    ]
    return da.stack(parts)


def _image_ds(data, dims=("frame", "y", "x")) -> xr.Dataset:
    return xr.Dataset({"counts": (dims, data, {"units": "counts"})}, attrs={"signal": "counts"})


def test_image_preview_reads_only_the_first_frames(raise_if_dask_computes):
    frames = np.random.default_rng(0).integers(0, 500, size=(50, 20, 30), dtype=np.uint16)
    read: list[int] = []
    ds = _image_ds(_tracked_stack(frames, read))
    with raise_if_dask_computes(max_computes=1):  # one compute, for the preview itself
        image = preview_image(ds, frames=4)
    assert sorted(read) == [0, 1, 2, 3]  # 4 of 50 frames: the read is bounded
    # float64 mean of 4 small integers: exact up to rounding of the last bit
    np.testing.assert_allclose(image.values, frames[:4].mean(axis=0), rtol=1e-12)
    assert image.dims == ("y", "x")
    assert image.attrs["preview"] == "counts: mean of frame 0-3"


def test_image_preview_of_a_4d_scan_is_the_central_pattern():
    scan = np.random.default_rng(1).random((5, 4, 8, 8))
    ds = _image_ds(da.from_array(scan, chunks=(1, 1, 8, 8)), ("scan_y", "scan_x", "y", "x"))
    image = preview_image(ds)
    np.testing.assert_array_equal(image.values, scan[2, 2])  # taken as is, no arithmetic
    assert image.attrs["preview"] == "counts: scan_y 2, scan_x 2"


def test_large_images_are_block_averaged_on_detector_pixel_axes():
    frame = np.random.default_rng(2).random((1, 100, 2050))
    image = preview_image(_image_ds(frame), max_pixels=1024)
    # factor ceil(2050/1024) = 3; trailing pixels that do not fill a block are dropped
    expected = frame[0, :99, :2049].reshape(33, 3, 683, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(image.values, expected, rtol=1e-12)
    np.testing.assert_allclose(image["x"].values[:2], [1.0, 4.0])  # centres of pixel blocks
    assert "3x3 binned" in image.attrs["preview"]


def test_robust_limits_ignore_hot_pixels_and_gap_flags():
    rng = np.random.default_rng(3)
    image = rng.integers(100, 200, size=(100, 100)).astype(np.int32)
    image[::10, ::10] = 1_000_000  # 1 % hot pixels
    image[:, 50:55] = -1  # a module gap flagged negative (5 %)
    lo, hi = robust_limits(image, percentiles=(1, 98), ignore_negative=True)
    body = image[image >= 0]
    assert (lo, hi) == tuple(np.percentile(body, (1, 98)))
    assert 100 <= lo < hi < 200  # the hot pixels and gaps do not set the limits


@pytest.mark.parametrize(
    ("values", "expected"),
    [(np.full(10, np.nan), (0.0, 1.0)), (np.full(10, 7.0), (6.5, 7.5))],
)
def test_robust_limits_degenerate_inputs(values, expected):
    assert robust_limits(values) == expected


def test_integer_preview_clim_leaves_negative_flags_out():
    frame = (50 + np.arange(900) % 20).reshape(1, 30, 30).astype(np.int32)
    frame[0, :, :3] = -2  # 10 % gap pixels
    clim = preview_image(_image_ds(frame)).attrs["clim"]
    assert clim == tuple(np.percentile(frame[frame >= 0], (1, 99.5)))  # not pulled to -2


def test_diffraction_patterns_get_a_log_colour_scale():
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    pattern = np.where(r < 4, 5000, np.where(abs(r - 20) < 1, 20, 0))  # disc, faint ring
    image = preview_image(_image_ds(pattern[None].astype(np.uint16)))
    assert image.attrs["logz"]
    positive = pattern[pattern > 0]
    assert image.attrs["clim"] == tuple(np.percentile(positive, (1, 99.9)))  # 20 .. 5000
    flat = preview_image(_image_ds(np.full((1, 8, 8), 100.0) + np.eye(8)))
    assert not flat.attrs["logz"]


def test_spectrum_is_nan_aware_mean_of_the_first_exposure(raise_if_dask_computes):
    rng = np.random.default_rng(4)
    cube = rng.normal(size=(3, 10, 6, 4))
    cube[:, :, 2] = np.nan  # dead rows along the slit
    cube[:, 0] = np.nan  # all-NaN wavelength bin
    wl = np.linspace(770, 771, 10)
    ds = xr.Dataset(
        {
            "sw": (("time", "wavelength", "y", "x"), da.from_array(cube, chunks=(1, 10, 6, 4))),
            "lw": (("time", "wavelength_lw", "y", "x"), da.from_array(cube[:, :5])),
        },
        coords={"wavelength": wl, "wavelength_lw": wl[:5] + 200},
        attrs={"signal": "sw"},
    )
    assert quicklook_kind(ds) == "spectrum"
    with raise_if_dask_computes(max_computes=2):  # one compute per window
        spectra = preview_spectra(ds)
    assert [s.name for s in spectra] == ["sw", "lw"]
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(cube[0], axis=(1, 2))
    # same float64 sums in a different order: equal to rounding
    np.testing.assert_allclose(spectra[0].values, expected, rtol=1e-12)
    assert np.isnan(spectra[0].values[0])
    np.testing.assert_allclose(spectra[1]["wavelength_lw"], wl[:5] + 200)


def test_log_quicklook_plots_variables_grouped_by_units():
    time = np.arange("2024-12-13T11:00", "2024-12-13T11:30", dtype="datetime64[m]")
    ds = xr.Dataset(
        {
            "Hydrogen": ("time", np.geomspace(1e-8, 1e-5, 30), {"units": "Torr"}),
            "Water": ("time", np.geomspace(1e-7, 1e-6, 30), {"units": "Torr"}),
            "Temp": ("time", np.linspace(20, 25, 30), {"units": "degC"}),
            "label": ("time", np.array(["a"] * 30)),  # not numeric: not plotted
        },
        coords={"time": time.astype("datetime64[ns]")},
        attrs={"signal": "Hydrogen"},
    )
    ql = quicklook(ds)
    assert ql.kind == "timeseries"
    assert [c.name for c in ql.data] == ["Hydrogen", "Water", "Temp"]
    plot = plot_quicklook(ql)
    assert isinstance(plot, hv.Layout) and len(plot) == 2  # Torr and degC panels
    pressures, temperature = plot
    assert len(pressures) == 2
    # 3 decades of pressure -> log axis; 20-25 degC -> linear
    assert hv.Store.lookup_options("bokeh", pressures, "plot").kwargs["logy"] is True
    assert hv.Store.lookup_options("bokeh", temperature, "plot").kwargs["logy"] is False
    np.testing.assert_array_equal(
        temperature.Curve.Temp.dimension_values("Temp"), ds["Temp"].values
    )


def test_image_plot_carries_robust_colour_limits():
    frame = np.random.default_rng(5).random((2, 16, 24))
    ql = quicklook(_image_ds(frame))
    plot = plot_quicklook(ql)
    assert isinstance(plot, hv.Image)
    assert plot.vdims[0].range == ql.data[0].attrs["clim"]  # hvplot sets clim as the range
    assert plot.dimension_values(2, flat=False).shape == (16, 24)


def test_signal_without_quicklook_raises_option_error():
    ds = xr.Dataset({"table": (("row", "col"), np.zeros((3, 4)))}, attrs={"source": "t.h5"})
    with pytest.raises(OptionError, match=r"t\.h5: no quick look .*\('row', 'col'\)"):
        quicklook(ds)
