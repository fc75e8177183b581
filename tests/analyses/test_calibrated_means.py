"""One-pass calibrated ROI and grid means against ground truth and the calibrate chain."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

import beamcat
from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.roi import grid_means, roi_means
from beamcat.catalog import demo, tiff
from beamcat.errors import OptionError

DIMS = ("frame", "y", "x")
GRID = {"grid": (3, 4), "grid_region": (5, 4, 30, 22)}
# the one-pass kernels are calibrate's and roi_means' own, so means and counts are the
# chain's to the last bit on one tile; over several tiles (the chain's chunks) the float64
# partial sums merge in another order: 1e-12 covers that, far below any real difference
RTOL = 1e-12


@pytest.fixture
def stacks():
    """Run (uint16, with times), dark and flat stacks, and ROIs: two rectangles and a mask."""
    rng = np.random.default_rng(3)
    run = xr.DataArray(rng.poisson(1500, (9, 36, 48)).astype(np.uint16), dims=DIMS)
    times = pd.date_range("2024-12-13T14:00", periods=9, freq="62s").to_numpy()
    run = run.assign_coords(frame=np.arange(9), time=("frame", times))
    dark = xr.DataArray(rng.normal(100, 3, (36, 48)), dims=("y", "x"))
    flat = xr.DataArray(rng.normal(3000, 50, (36, 48)), dims=("y", "x"))
    flat[7, 9] = 0  # a dead flat pixel inside ROI "a": NaN there (or 1/eps with "clip")
    mask = np.zeros((36, 48), bool)
    mask[20:30, 10:14] = mask[25, 30] = True
    rois = {"a": (6, 5, 10, 8), "b": (30.5, 12, 7.5, 9), "m": mask}
    return run, dark, flat, rois


def _chain(run, dark, flat, rois, *, air_roi=None, **options):
    t = calibrate(run, dark, flat, air_roi=air_roi, **options)
    region, edges = GRID["grid_region"], "even"
    return {"rois": roi_means(t, rois), "grid": grid_means(t, *GRID["grid"], region=region)}, edges


def _assert_matches(out: dict, chain: dict) -> None:
    for key in ("rois", "grid"):
        xr.testing.assert_allclose(out[key], chain[key], rtol=RTOL, atol=0)
        assert out[key].attrs == chain[key].attrs  # history: calibrate's line, then the means'
        assert out[key]["mean"].dims == chain[key]["mean"].dims


@pytest.mark.parametrize("air_roi", [None, (40, 0, 8, 30)])
@pytest.mark.parametrize("invalid", ["nan", "clip"])
@pytest.mark.parametrize(
    "chunks", [None, {"frame": 4}, {"frame": 2, "y": 7}, {"frame": 5, "y": 10, "x": 9}]
)
def test_equals_the_chain(stacks, air_roi, invalid, chunks):
    run, dark, flat, rois = stacks
    run = run if chunks is None else run.chunk(chunks)
    out = calibrated_means(run, dark, flat, rois=rois, air_roi=air_roi, invalid=invalid, **GRID)
    chain, _ = _chain(run, dark, flat, rois, air_roi=air_roi, invalid=invalid)
    (out, chain) = dask.compute(out, chain)
    _assert_matches(out, chain)
    assert out["rois"]["mean"].dims == ("roi", "time")
    # the dead flat pixel: skipped by "nan" (one pixel fewer), kept as ~1e6 by "clip"
    count_a = out["rois"]["count"].sel(roi="a").values
    assert (count_a == (79 if invalid == "nan" else 80)).all()


def test_outliers_and_lazy_masters(stacks):
    run, dark, flat, rois = stacks
    # masters still as frames: calibrated_means makes them, like calibrate
    darks = xr.DataArray(np.repeat(dark.values[None], 3, 0), dims=DIMS).chunk({"frame": 2})
    flats = xr.DataArray(np.repeat(flat.values[None] + dark.values[None], 2, 0), dims=DIMS)
    options = {"outliers": {"radius": 3, "bright": 50.0, "dark": 50.0}, "air_roi": (40, 0, 8, 30)}
    out = calibrated_means(run.chunk({"frame": 4}), darks, flats, rois=rois, **options, **GRID)
    chain, _ = _chain(run.chunk({"frame": 4}), darks, flats, rois, **options)
    _assert_matches(*dask.compute(out, chain))


def test_demo_transmission_per_region_within_half_percent(demo_dir):
    # the same truth as calibrate's test, through the one pass: T per region and frame
    catalog = beamcat.open_catalog(demo_dir / demo.CATALOG_NAME)
    scalars, arrays = demo.read_truth(demo_dir / "radiography")
    rois = {name: scalars["rois"][name] for name in scalars["regions"]}
    read = {name: catalog[f"imat_{name}"].read().counts for name in ("run", "dark", "flat")}
    outliers = {"bright": 2500.0, "dark": 2500.0}  # as calibrate's test, which says why
    air = scalars["rois"][scalars["air_region"]]
    out = calibrated_means(
        read["run"], read["dark"], read["flat"], rois=rois, air_roi=air, outliers=outliers
    )
    means = out["rois"]["mean"].compute()
    np.testing.assert_array_equal(means["time"].values, arrays["frame_end"])
    # 0.5 % is the bar (the worst region is 0.25 % off: Poisson noise and flats)
    np.testing.assert_allclose(means.values.T, arrays["transmission"], rtol=5e-3)


def test_real_tiff_stack_reads_only_the_rows_of_the_box(tmp_path, monkeypatch):
    # a folder of TIFF files as open_tiff reads it (16-row bands): the reader is asked
    # for the rows of the box around the ROIs and the air region only
    rng = np.random.default_rng(5)
    frames = rng.poisson(2000, (10, 64, 40)).astype(np.uint16)
    for i, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"run_{i:03d}.tif", frame)
    asked = []
    getitem = tiff.TiffStack.__getitem__
    monkeypatch.setattr(
        tiff.TiffStack, "__getitem__", lambda self, key: asked.append(key) or getitem(self, key)
    )
    run = tiff.open_tiff(tmp_path, times="none", chunks={"frame": 3, "y": 16}).counts
    dark = xr.DataArray(np.full((64, 40), 90.0), dims=("y", "x"))
    flat = xr.DataArray(rng.normal(1800, 30, (64, 40)), dims=("y", "x"))
    rois = {"low": (3, 20, 6, 5), "high": (20, 30, 9, 10)}
    air = (30, 18, 8, 6)
    out = calibrated_means(run, dark, flat, rois=rois, air_roi=air)["rois"].compute()
    rows = {(key[1].start, key[1].stop) for key in asked}
    assert rows == {(18, 32), (32, 40)}  # rows 18-40 (bands 16-32, 32-48), nothing else
    ref = roi_means(calibrate(xr.DataArray(frames, dims=DIMS), dark, flat, air_roi=air), rois)
    np.testing.assert_allclose(out["mean"], ref["mean"], rtol=RTOL)
    np.testing.assert_allclose(out["std"], ref["std"], rtol=1e-9)


def test_nothing_computes_and_results_stay_lazy(stacks, raise_if_dask_computes):
    run, dark, flat, rois = stacks
    # dask-backed frames (not their time coordinate, which becomes the index), dark
    # frames whose master is made, a dask-backed flat master
    run = run.copy(data=da.from_array(run.values, (3, 20, 48)))
    darks = xr.DataArray(np.repeat(dark.values[None], 2, 0), dims=DIMS).chunk()
    with raise_if_dask_computes():
        out = calibrated_means(run, darks, flat.chunk(), rois=rois, air_roi=(40, 0, 8, 30), **GRID)
    for result in out.values():
        assert all(v.chunks is not None for v in result.data_vars.values())


def test_one_task_per_chunk_of_frames_and_merged_results(stacks):
    run, dark, flat, rois = stacks
    run = xr.concat([run] * 50, "frame").chunk({"frame": 9})  # 450 frames, 50 chunks
    out = calibrated_means(run, dark, flat, rois=rois, **GRID)
    graph = dict(out["grid"]["mean"].data.__dask_graph__())
    stats = [k for k in graph if isinstance(k, tuple) and k[0].startswith("chunk_stats")]
    assert len(stats) == 50  # one kernel task per chunk of frames, whatever the regions
    assert out["grid"]["mean"].chunks[-1] == (450,)  # results: a few numbers per frame, merged


def test_numpy_backed_frames_give_numpy_results(stacks):
    run, dark, flat, rois = stacks
    out = calibrated_means(run, dark, flat, rois=rois, **GRID)
    assert all(isinstance(v.data, np.ndarray) for v in out["grid"].data_vars.values())
    _assert_matches(out, _chain(run, dark, flat, rois)[0])


def test_accessor_is_the_function(stacks):
    run, dark, flat, rois = stacks
    ds = run.to_dataset(name="counts").assign_attrs(signal="counts")
    out = ds.radiography.calibrated_means(dark, flat, rois=rois, air_roi=(40, 0, 8, 30))
    assert list(out) == ["rois"]
    expected = calibrated_means(run, dark, flat, rois=rois, air_roi=(40, 0, 8, 30))["rois"]
    xr.testing.assert_identical(out["rois"], expected)


@pytest.mark.parametrize(
    "options, match",
    [
        ({}, "give rois, grid or both"),
        ({"rois": {"out": (40, 30, 20, 20)}}, r"ROI 'out'.*outside the image"),
        ({"rois": {"empty": (3, 3, 0, 4)}}, r"ROI 'empty'.*covers no pixel"),
        ({"grid": (2, 2), "grid_region": (0, 0, 60, 10)}, "grid region.*outside"),
        ({"grid": (50, 2)}, "leave empty cells"),
        ({"rois": [(1, 1, 2, 2)], "air_roi": (0, 0, 99, 2)}, "air_roi.*outside"),
    ],
)
def test_bad_options_raise_option_errors(stacks, options, match):
    run, dark, flat, _ = stacks
    with pytest.raises(OptionError, match=match):
        calibrated_means(run, dark, flat, **options)


def test_dark_flat_shape_mismatch_names_the_source(stacks):
    run, dark, flat, rois = stacks
    small = dark[:30].assign_attrs(source="dark_master.zarr")
    with pytest.raises(OptionError, match=r"dark \(dark_master.zarr\): shape \(y: 30, x: 48\)"):
        calibrated_means(run, small, flat, rois=rois)
