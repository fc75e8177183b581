"""4D-STEM radial profiles and virtual images on a distributed LocalCluster = threaded.

The scan is a MIB file read by the worker (another process), so the reader
tasks, the label-reduction kernel, the mask products and the partial results
cross a process boundary by pickle. The same tasks run on the same chunks,
only elsewhere, so the results must be identical, not merely close.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.stem4d import (
    annulus_mask,
    centre_of_mass,
    disc_mask,
    radial_profiles,
    virtual_images,
)
from beamcat.catalog.demo import stem4d as demo


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "stem4d"
    entry = {e.name: e for e in demo.write(folder, np.random.default_rng([0, 12]))}["stem4d_scan"]
    return beamcat.open_dataset(entry.source, **entry.options).chunk({"scan_y": 8})


def test_stem4d_on_a_local_cluster_equal_threaded(scan, local_cluster_client):
    cal = {"x0": demo.CENTRE[0], "y0": demo.CENTRE[1], "a": 40.0, "b": 40.0 * demo.AXIS_RATIO}
    cal.update(theta=demo.THETA, reciprocal_pixel_size=demo.RECIPROCAL_PIXEL)
    masks = {
        "bf": disc_mask((128, 128), demo.CENTRE, 6),
        "adf": annulus_mask((128, 128), demo.CENTRE, 20, 50),
    }
    chain = {
        "radial": radial_profiles(scan, cal, n_bins=48),
        "virtual": virtual_images(scan, masks),
        "com": centre_of_mass(scan, threshold=10),
    }
    # Dataset.compute, not dask.compute(chain): with dask 2026.8 / xarray 2026.9,
    # dask.compute of a Dataset whose variables share a layer (label_stats' mean and
    # variance share a ``where``) loses it in the graph optimisation ("Missing
    # dependency", pydata/xarray#11329; optimize_graph=False works)
    for out in chain.values():
        threaded = out.compute(scheduler="threads")
        distributed = out.compute(scheduler=local_cluster_client)
        xr.testing.assert_identical(distributed, threaded)
    assert np.isfinite(chain["radial"]["mean"].values).all()
