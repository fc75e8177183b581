"""Radiography analyses on a distributed LocalCluster (worker in another process) = threaded.

The frames are TIFF files read by the worker, so the reader tasks, the numba
kernels and the partial results all cross a process boundary by pickle. Results
must be identical to the threaded scheduler's: the same tasks run on the same
chunks, only elsewhere.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

import beamcat
from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.analyses.roi import grid_means

ROIS = {"a": (6, 5, 10, 8), "b": (30.5, 12, 7.5, 9)}
AIR = (40, 0, 8, 30)


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A run of 12 uint16 TIFF frames, 4 darks and 4 flats, as files on disk."""
    folder = tmp_path_factory.mktemp("distributed")
    rng = np.random.default_rng(11)
    paths = {}
    for name, level, n in (("run", 1500, 12), ("dark", 100, 4), ("flat", 3000, 4)):
        (folder / name).mkdir()
        for i in range(n):
            frame = rng.poisson(level, (36, 48)).astype(np.uint16)
            tifffile.imwrite(folder / name / f"{name}_{i:03d}.tif", frame)
        paths[name] = str(folder / name / f"{name}_*.tif")
    return paths


@pytest.fixture(scope="module")
def inputs(run_files):
    run, dark, flat = (
        beamcat.open_dataset(run_files[k], format="tiff").counts for k in ("run", "dark", "flat")
    )
    run = run.chunk({"frame": 4})
    times = pd.date_range("2024-12-13T14:00", periods=run.sizes["frame"], freq="62s")
    run = run.assign_coords(time=("frame", times.to_numpy()))
    d = dark_master(dark)
    return run, d, flat_master(flat, d)


def _identical(a: dict, b: dict) -> None:
    for key in a:
        xr.testing.assert_identical(a[key], b[key])


def test_calibrated_means_on_a_local_cluster_equal_threaded(inputs, local_cluster_client):
    run, dark, flat = inputs
    out = calibrated_means(run, dark, flat, rois=ROIS, grid=(3, 4), air_roi=AIR)
    (threaded,) = dask.compute(out, scheduler="threads")
    (distributed,) = dask.compute(out, scheduler=local_cluster_client)
    _identical(distributed, threaded)
    assert np.isfinite(threaded["rois"]["mean"]).all()


def test_calibrate_then_roi_means_on_a_local_cluster_equal_threaded(inputs, local_cluster_client):
    run, dark, flat = inputs
    t = calibrate(run, dark, flat, air_roi=AIR)
    chain = {"rois": t.roi.means(ROIS), "grid": grid_means(t, 3, 4)}
    (threaded,) = dask.compute(chain, scheduler="threads")
    (distributed,) = dask.compute(chain, scheduler=local_cluster_client)
    _identical(distributed, threaded)
