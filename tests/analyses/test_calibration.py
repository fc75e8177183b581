"""Calibration against ground truth: the demo run, the original's formulas, real PSI radiographs."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

import beamcat
from beamcat.analyses import calibration, outliers
from beamcat.analyses.calibration import calibrate, calibrate_reference
from beamcat.analyses.difference import difference
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.analyses.outliers import (
    remove_outliers,
    remove_outliers_frame,
    remove_outliers_reference,
)
from beamcat.catalog import demo
from beamcat.catalog.catalogs import open_catalog
from beamcat.errors import BeamcatError, OptionError

DIMS = ("frame", "y", "x")
# the demo's planted gamma spots add >= 3734 counts (3863 above their 3x3 median at least),
# while its pixel response (3 % rms of ~9000 counts) and Poisson noise keep every other
# pixel within 1450 counts of its median: 2500 separates the two with ~1000 counts each side
DEMO_THRESHOLD = 2500.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def imat(demo_dir):
    """The demo's IMAT run, darks, flats and its ground truth."""
    catalog = open_catalog(demo_dir / demo.CATALOG_NAME)
    scalars, arrays = demo.read_truth(demo_dir / "radiography")
    read = {name: catalog[f"imat_{name}"].read() for name in ("run", "dark", "flat")}
    return read, scalars, arrays


def _stack(rng, n=4, shape=(12, 15), level=1000.0, dtype=np.uint16):
    return xr.DataArray(rng.poisson(level, (n, *shape)).astype(dtype), dims=DIMS)


@pytest.fixture
def small():
    """Small dark, flat and run stacks (uint16) with a time coordinate on the run."""
    rng = np.random.default_rng(7)
    dark = _stack(rng, 3, level=100.0)
    flat = _stack(rng, 5, level=3000.0)
    run = _stack(rng, 6, level=1500.0)
    times = pd.date_range("2024-12-13T14:00", periods=6, freq="62s").to_numpy()
    run = run.assign_coords(frame=np.arange(6), time=("frame", times))
    return run, dark, flat


def _chunked(arr: xr.DataArray, chunks: dict | None) -> xr.DataArray:
    return arr if chunks is None else arr.chunk(chunks)


# --------------------------------------------------------------------------- demo ground truth


def test_demo_transmission_per_region_within_half_percent(imat):
    read, scalars, arrays = imat
    rois = scalars["rois"]
    t = calibrate(
        read["run"].counts,
        read["dark"].counts,
        read["flat"].counts,
        air_roi=rois[scalars["air_region"]],
        outliers={"bright": DEMO_THRESHOLD, "dark": DEMO_THRESHOLD},
    )
    assert t.dims == ("time", "y", "x") and t.dtype == np.float32 and t.attrs["units"] == "1"
    # the time axis is the frame log's (frame end times, UTC)
    np.testing.assert_array_equal(t["time"].values, arrays["frame_end"])
    t = t.compute()
    for i, region in enumerate(scalars["regions"]):
        x, y, w, h = rois[region]
        recovered = t[:, y : y + h, x : x + w].mean(("y", "x")).values
        # truth: T of the region without drift; the air region's T is 1, so T relative to
        # air is T. 0.5 % is the bar; the worst region (the 6 px wide wall,
        # 600 px) is off by 0.25 % from Poisson noise of ~9000-count pixels and the flats
        np.testing.assert_allclose(recovered, arrays["transmission"][:, i], rtol=5e-3)


def test_demo_air_normalisation_removes_the_source_drift(imat):
    read, scalars, arrays = imat
    x, y, w, h = scalars["rois"][scalars["air_region"]]
    t = calibrate(read["run"].counts, read["dark"].counts, read["flat"].counts)
    air = t[:, y : y + h, x : x + w].mean(("y", "x")).values
    # without normalisation the air region (true T = 1) reads the source intensity
    # relative to the flats, the truth's drift (+-3 %); 3600 px of ~9000 counts: 0.1 %
    np.testing.assert_allclose(air, arrays["drift"], rtol=1e-3)


def test_demo_outliers_removed_exactly_where_planted(imat):
    read, _, arrays = imat
    raw = read["run"].counts
    cleaned = remove_outliers(raw, bright=DEMO_THRESHOLD, dark=DEMO_THRESHOLD).values
    changed = {tuple(map(int, p)) for p in np.argwhere(cleaned != raw.values)}
    planted = {tuple(map(int, p)) for p in arrays["outliers"][:, :3]}
    assert changed == planted  # every planted spot, and nothing else
    # the planted positions are no longer outliers: a second pass leaves them alone
    again = remove_outliers(xr.DataArray(cleaned, dims=raw.dims))
    f, yy, xx = np.array(sorted(planted)).T
    np.testing.assert_array_equal(again.values[f, yy, xx], cleaned[f, yy, xx])
    # the original's 1000-count thresholds catch them too (with pixels of the demo's
    # response pattern that lie > 11 % off their neighbours)
    default = remove_outliers(raw).values
    assert (default[f, yy, xx] != raw.values[f, yy, xx]).all()


# --------------------------------------------------------------------------- real data


def test_psi_step_wedge_transmissions(shared_data):
    folder = shared_data / "waterinsand_neutra"
    frames = {
        k: beamcat.open_dataset(folder / f"exp10s_{k}.tif").counts for k in ("dc", "ob", "h2o")
    }
    # air_roi: open beam above the two containers (looked at: rows 5-35, columns 650-850);
    # outliers: the files hold gamma spots (up to 64078 counts)
    t = calibrate(frames["h2o"], frames["dc"], frames["ob"], air_roi=(650, 5, 200, 30), outliers={})
    assert t.dims == ("frame", "y", "x")
    image = t[0].compute()
    # Locating the steps. Looking at the image (a saved PNG), the water step wedge is
    # the right container; its steps are horizontal bands between the meniscus (rows
    # < 95) and its dry bottom (rows > 655), and columns 950-1250 lie inside its water
    # in every row. The profile along the wedge axis (median over those columns of each
    # row) is flat on a step and jumps by 0.08-0.15 between steps; rows where it
    # changes by > 0.04 over 6 rows are edges, and runs of > 40 other rows are steps,
    # used 5 rows away from their edges.
    band = image[95:655, 950:1250]
    profile = band.median("x").values
    edge = np.zeros(profile.size, bool)
    edge[3:-3] = np.abs(profile[6:] - profile[:-6]) > 0.04
    runs, start = [], None
    for row, is_edge in enumerate([*edge, True]):
        if not is_edge and start is None:
            start = row
        elif is_edge and start is not None:
            if row - start > 40:
                runs.append((start + 5, row - 5))
            start = None
    assert len(runs) == 5, runs  # the wedge's five water steps
    steps = np.array([float(band[a:b].mean()) for a, b in runs])
    flatness = np.array([np.ptp(profile[a:b]) for a, b in runs])
    assert (flatness < 0.03).all(), flatness  # each is a plateau (steps differ by >= 0.08)
    # over the wedge: mean T of every step, and every row's median, in (0, 1.05]
    assert ((steps > 0) & (steps <= 1.05)).all(), steps
    assert ((profile > 0) & (profile <= 1.05)).all()
    # a step wedge is a staircase: its water thickness grows step by step from the
    # bottom step (high rows) to the top one, so T must fall strictly from bottom to top
    assert (np.diff(steps) > 0.05).all(), steps


# --------------------------------------------------------------------------- reference twins


@settings(max_examples=60, deadline=None)
@given(
    frame=hnp.arrays(
        st.sampled_from([np.uint16, np.int16, np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=14),
        elements=st.integers(0, 3000),
    ),
    radius=st.integers(1, 6),
    bright=st.sampled_from([0.0, 10.0, 500.0, 1000.0]),
    dark=st.sampled_from([0.0, 10.0, 500.0, 1000.0]),
)
def test_numba_kernel_equals_scipy_twin(frame, radius, bright, dark):
    # exact: the kernel takes the same float64 differences and the median is a pixel value;
    # small frames with windows up to 6 px make most pixels edge pixels (reflect mode).
    # The outliers.KERNELS table (kernel -> twin) drives this test.
    assert outliers.KERNELS == {remove_outliers_frame: remove_outliers_reference}
    for kernel, twin in outliers.KERNELS.items():
        expected = twin(frame, radius=radius, bright=bright, dark=dark)
        got = kernel(frame, radius, bright, dark)
        assert got.dtype == frame.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kernel", list(calibration.KERNELS), ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_transmission_kernel_equals_numpy_twin(kernel, dtype):
    # the same float32 products and float64 divisions rounded to float32: bit for bit
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 4000, (3, 9, 7)).astype(dtype)
    dark = rng.normal(100, 3, (9, 7)).astype(np.float32)
    inverse = (1 / rng.normal(3000, 50, (9, 7))).astype(np.float32)
    inverse[2, 3] = np.nan  # a dead flat pixel stays NaN
    scale = np.array([1.0, 0.5, 1.25])
    got = kernel(frames, dark, inverse, scale)
    np.testing.assert_array_equal(got, calibration.KERNELS[kernel](frames, dark, inverse, scale))
    assert got.dtype == np.float32 and np.isnan(got[:, 2, 3]).all()


def test_outliers_at_edges_and_corners_match_twin():
    rng = np.random.default_rng(3)
    frame = rng.poisson(2000, (9, 11)).astype(np.uint16)
    for y, x in [(0, 0), (0, 10), (8, 0), (8, 10), (0, 5), (4, 0)]:
        frame[y, x] = 20000  # gamma spot
    frame[4, 10] = 5  # dead pixel
    got = remove_outliers(xr.DataArray(frame[None], dims=DIMS)).values[0]
    np.testing.assert_array_equal(got, remove_outliers_reference(frame))
    assert got.max() < 3000 and got.min() > 1000


def test_uint16_differences_do_not_wrap():
    # the original subtracts uint16 arrays: 100 - 101 wraps to 65535 > 1000, so every
    # pixel differing from its median is replaced (a plain median filter); the rule as
    # written leaves a pixel 1 count off its median alone
    frame = np.full((5, 5), 101, np.uint16)
    frame[2, 2] = 100
    median = ndimage.median_filter(frame, size=(3, 3))
    wrapped = np.where((frame - median > 1000) | (median - frame > 1000), median, frame)
    assert wrapped[2, 2] == 101  # what the original's arithmetic does
    assert remove_outliers(xr.DataArray(frame[None], dims=DIMS)).values[0, 2, 2] == 100


def _original_loop(run, darks, flats, calib, outliers=None):
    """The original scripts (01_Dark_Flat_Processing.py, 03_Image_Processing.py) on arrays."""

    def clean(im):
        return im if outliers is None else remove_outliers_reference(im, **outliers)

    def running_mean(images):  # the original's, saved as float32
        mean = None
        for i, im in enumerate(images):
            mean = im if i == 0 else ((i * mean) + im) / (i + 1)
        return mean.astype(np.float32)

    master_dark = running_mean(clean(im) for im in darks)
    master_flat = running_mean(clean(im) - master_dark for im in flats)
    inverse = 1.0 / np.maximum(master_flat.astype(np.float32, copy=False), 1e-6)
    x, y, w, h = calib
    out = []
    for im in run:
        im = (clean(im) - master_dark) * inverse
        out.append(im / np.mean(im[y : y + h, x : x + w]))
    return np.stack(out)


@pytest.mark.parametrize("outliers", [None, {"radius": 3, "bright": 300.0, "dark": 300.0}])
def test_calibrate_equals_the_original_loop(small, outliers):
    run, dark, flat = small
    run = run.copy(data=run.values.copy())
    run.values[2, 5, 7] = 9000  # a gamma spot for the outlier rule
    flat = flat.copy(data=flat.values.copy())
    flat.values[:, 9:12, 2:5] = 0  # dead flat pixels (F - D < 0), outside the air ROI
    calib = (1, 2, 6, 5)
    expected = _original_loop(run.values, dark.values, flat.values, calib, outliers)
    got = calibrate(run, dark, flat, air_roi=calib, outliers=outliers, invalid="clip")
    # float32 arithmetic as the original's; sums in another order: a few float32 ulps
    np.testing.assert_allclose(got.values, expected, rtol=1e-5)
    # the clamp blows dead pixels up (the 3x3 dead block survives outlier removal at its
    # centre at least); beamcat's default marks exactly those NaN and agrees elsewhere
    blown = np.abs(expected) > 1e4
    assert blown[:, 10, 3].all()
    nan_safe = calibrate(run, dark, flat, air_roi=calib, outliers=outliers).values
    np.testing.assert_array_equal(np.isnan(nan_safe), blown)
    np.testing.assert_allclose(nan_safe[~blown], expected[~blown], rtol=1e-5)


def test_masters_equal_numpy(small):
    _, dark, flat = small
    d = dark.values.astype(np.float64)
    f = flat.values.astype(np.float64)
    np.testing.assert_allclose(dark_master(dark).values, d.mean(0), rtol=1e-7)
    np.testing.assert_allclose(dark_master(dark, method="median").values, np.median(d, 0))
    master = dark_master(dark)
    expected = (f - master.values).mean(0)  # dark subtracted from each flat, then mean
    np.testing.assert_allclose(flat_master(flat, master).values, expected, rtol=1e-6)
    expected = np.median(f - master.values, 0)
    np.testing.assert_allclose(flat_master(flat, dark, method="median").values, expected, rtol=1e-6)
    assert dark_master(dark).dtype == flat_master(flat, dark).dtype == np.float32


@pytest.mark.parametrize("chunks", [{"frame": 1}, {"frame": 2, "y": 5}, {"frame": 3, "x": 4}])
def test_integer_mean_masters_equal_numpy_under_any_chunking(chunks):
    # dask-backed integer frames take the frame-sum path: float64 sums are exact for
    # uint16 counts, so the master is NumPy's float64 mean rounded to float32, bit for bit
    rng = np.random.default_rng(11)
    frames = xr.DataArray(rng.integers(0, 65535, (7, 12, 15), np.uint16), dims=DIMS)
    expected = frames.values.astype(np.float64).mean(0).astype(np.float32)
    with dask.config.set({"array.split_every": 2}):  # a tree of combine steps, not one
        master = dark_master(frames.chunk(chunks)).compute()
    np.testing.assert_array_equal(master.values, expected)


def test_calibrate_keeps_time_and_metadata(small):
    run, dark, flat = small
    t = calibrate(run.assign_attrs(history="opened"), dark, flat)
    assert t.name == "transmission" and t.dims == ("time", "y", "x")
    assert t.attrs["units"] == "1" and t.attrs["long_name"] == "transmission"
    assert t.attrs["history"].startswith("opened\ncalibrate(")
    np.testing.assert_array_equal(t["frame"].values, np.arange(6))
    assert calibrate(run.drop_vars("time"), dark, flat).dims == ("frame", "y", "x")


# --------------------------------------------------------------------------- difference


def _stretch_twin(d, low=2, high=95):
    """04c_Difference_Image.py:180-188 per frame, as a linear map of the percentiles to 0..1."""
    p_low, p_high = np.percentile(d, low), np.percentile(d, high)
    return np.clip((d - p_low) / (p_high - p_low), 0, 1)


def test_difference_references(small):
    run, dark, flat = small
    t = calibrate(run, dark, flat).compute()
    v = t.values
    by_index = difference(t, reference=2)
    np.testing.assert_allclose(by_index.difference.values, v - v[2], atol=1e-6)
    for i in (0, 4):
        np.testing.assert_allclose(
            by_index.display.values[i], _stretch_twin(v[i] - v[2]), atol=1e-5
        )
    assert (by_index.display.values[2] == 0.5).all()  # no spread in the reference itself
    # a time picks the nearest frame; a window of times averages its frames
    near = difference(t, reference=t["time"].values[3] + np.timedelta64(20, "s"))
    np.testing.assert_allclose(near.difference.values, v - v[3], atol=1e-6)
    window = slice(str(t["time"].values[1]), str(t["time"].values[3]))
    mean = difference(t, reference=window).difference.values
    np.testing.assert_allclose(mean, v - v[1:4].mean(0), atol=1e-6)
    np.testing.assert_allclose(difference(t, reference=slice(1, 4)).difference, mean, atol=1e-6)


@pytest.mark.parametrize(
    ("reference", "match"),
    [
        (6, "outside 0 .. 5"),
        ("2024-12-13T13:00", "outside the frames' time range"),
        (slice("2024-12-13T14:00:10", "2024-12-13T14:00:20"), "holds no frame"),
        (slice(3, 3), "holds no frame"),
        ("not a time", "index, a time or a slice"),
    ],
)
def test_difference_bad_reference(small, reference, match):
    run, dark, flat = small
    with pytest.raises(OptionError, match=match):
        difference(calibrate(run, dark, flat), reference=reference)


def test_difference_against_a_reference_image(small, raise_if_dask_computes):
    run, dark, flat = small
    t = calibrate(run.chunk({"frame": 2}), dark, flat)  # dims (time, y, x)
    image = t.isel(time=2).compute().assign_attrs(source="ref.tif")
    with raise_if_dask_computes():  # a given image: nothing is computed to get it
        by_image = difference(t, reference=image)
    # the same subtraction of the same float32 image: identical to reference=2
    xr.testing.assert_identical(
        by_image.drop_attrs(), difference(t, reference=2).compute().drop_attrs()
    )
    assert "reference=image (ref.tif)" in by_image.attrs["history"]
    with pytest.raises(OptionError, match=r"reference \(ref.tif\): shape \(y: 11, x: 15\)"):
        difference(t, reference=image[1:])
    # the accessor takes it too
    xr.testing.assert_identical(t.radiography.difference(reference=image), by_image)


# --------------------------------------------------------------------------- errors


def test_bad_inputs_raise_beamcat_errors(small):
    run, dark, flat = small
    cases = [
        (lambda: calibrate(run, dark[:, :10], flat), r"dark.*\(y: 10, x: 15\) does not match"),
        (lambda: calibrate(run, dark, flat[:, :, 1:]), r"flat.*\(y: 12, x: 14\) does not match"),
        (lambda: calibrate(run, dark, flat, air_roi=(10, 0, 6, 4)), "outside the image"),
        (lambda: calibrate(run, dark, flat, air_roi=(-1, 0, 2, 2)), "outside the image"),
        (lambda: calibrate(run, dark, flat, air_roi=(0, 0, 0, 4)), "is empty"),
        (lambda: calibrate(run, dark, flat, air_roi=(1, 2)), r"rectangle \(x, y, w, h\)"),
        (lambda: calibrate(run, dark, flat, invalid="zero"), "invalid must be"),
        (lambda: calibrate(run.transpose("y", "x", "frame"), dark, flat), "detector dims"),
        (lambda: calibrate(run.values, dark, flat), "expected an xarray.DataArray"),
        (lambda: dark_master(dark, method="mode"), "method must be"),
        (lambda: remove_outliers(run, radius=0), "radius must be"),
        (lambda: remove_outliers(run, bright=-1), "bright must be"),
        (lambda: difference(run, stretch=(95, 2)), "stretch must be"),
    ]
    for call, match in cases:
        with pytest.raises(BeamcatError, match=match):
            call()


def test_errors_name_the_source(small):
    run, dark, flat = small
    dark = dark[:, 1:].assign_attrs(source="/data/dark")
    with pytest.raises(OptionError, match="/data/dark"):
        calibrate(run, dark, flat)


# --------------------------------------------------------------------------- laziness, chunking


def _pipeline(run, dark, flat):
    """Every analysis of the module, chained the way a user would."""
    d = dark_master(dark, method="median")
    f = flat_master(flat, d, outliers={})
    t = calibrate(run, d, f, air_roi=(2, 3, 5, 4), outliers={"bright": 300.0, "dark": 300.0})
    diff = difference(t, reference=slice(0, 2))
    return {"dark": d, "mean_dark": dark_master(dark), "flat": f, "transmission": t, **diff}


def test_nothing_computes_and_results_stay_lazy(small, raise_if_dask_computes):
    # chunk the pixels only: readers give dask data with in-memory coordinates
    run, dark, flat = (a.copy(data=da.from_array(a.values, chunks=2)) for a in small)
    with raise_if_dask_computes():
        results = _pipeline(run, dark, flat)
        results["clean"] = remove_outliers(run)
        results["time_ref"] = difference(
            results["transmission"], reference=run["time"].values[1]
        ).display
    for name, result in results.items():
        assert isinstance(result.data, da.Array), name


@settings(max_examples=15, deadline=None)
@given(
    frame_chunk=st.integers(1, 6),
    y_chunk=st.integers(1, 12),
    x_chunk=st.integers(1, 15),
)
def test_any_chunking_gives_numpy_numbers(frame_chunk, y_chunk, x_chunk):
    rng = np.random.default_rng(11)
    run, dark, flat = (
        _stack(rng, 6, level=1500.0),
        _stack(rng, 3, level=100.0),
        _stack(rng, 5, level=3000.0),
    )
    run.values[1, 4, 4] = 9000
    expected = {k: v.values for k, v in _pipeline(run, dark, flat).items()}
    chunks = {"frame": frame_chunk, "y": y_chunk, "x": x_chunk}
    got = _pipeline(*(a.chunk(chunks) for a in (run, dark, flat)))
    for name, value in got.items():
        # float32 results; the masters' sums combine in another order: float32 ulps
        np.testing.assert_allclose(value.values, expected[name], rtol=1e-6, err_msg=name)


# --------------------------------------------------------------------------- fused kernel


@pytest.mark.parametrize("invalid", ["nan", "clip"])
@pytest.mark.parametrize("chunks", [None, {"frame": 2, "y": 5, "x": 7}, {"frame": 4, "y": 12}])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_kernels_equal_numpy_twin(invalid, chunks, dtype):
    rng = np.random.default_rng(5)
    run = _stack(rng, 6, level=1500.0).astype(dtype)
    dark = xr.DataArray(rng.normal(100.0, 4.0, (12, 15)).astype(np.float32), dims=("y", "x"))
    flat = xr.DataArray(rng.normal(3000.0, 50.0, (12, 15)).astype(np.float32), dims=("y", "x"))
    flat.values[8:11, 2:6] = 0.0  # dead flat pixels: NaN or clipped
    flat.values[2, 3] = np.nan  # a NaN in the air region, skipped by its mean
    air = (1, 1, 6, 5)
    for air_roi in (None, air):
        expected = calibrate_reference(
            run.values, dark.values, flat.values, air_roi=air_roi, invalid=invalid
        )
        got = calibrate(_chunked(run, chunks), dark, flat, air_roi=air_roi, invalid=invalid)
        got = got.values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        if air_roi is None:  # the same float32 operations in the same order: bit for bit
            np.testing.assert_array_equal(got, expected)
        else:  # the air mean's float64 sum runs in another order (1e-16): 1 float32 ulp
            ok = ~np.isnan(expected)
            np.testing.assert_array_max_ulp(got[ok], expected[ok], maxulp=1)


def test_air_mean_reads_the_air_tiles_only(small):
    # raw frames in 4 x 5 tiles: the transmission of one tile may read that tile and the
    # air region's tile, never another one (that would read or hold whole frames)
    run, dark, flat = small
    allowed = {(0, 0), (8, 10)}  # the air tile, the tile computed

    def tile(block, block_info=None):
        (_, _), (y0, _), (x0, _) = block_info[0]["array-location"]
        if (y0, x0) not in allowed:
            raise AssertionError(f"tile ({y0}, {x0}) read")
        return block

    data = da.from_array(run.values, chunks=(3, 4, 5)).map_blocks(tile, dtype=run.dtype)
    got = calibrate(run.copy(data=data), dark, flat, air_roi=(1, 1, 3, 2))
    expected = calibrate_reference(
        run.values,
        dark_master(dark).values,
        flat_master(flat, dark_master(dark)).values,
        air_roi=(1, 1, 3, 2),
    )
    # the same masters; the air mean's float64 sum runs in another order: a float32 ulp
    np.testing.assert_allclose(got[:, 8:12, 10:15].values, expected[:, 8:12, 10:15], rtol=1e-6)
    with pytest.raises(AssertionError, match=r"tile \(4, 5\) read"):
        got[:, 4:8, 5:10].compute()
