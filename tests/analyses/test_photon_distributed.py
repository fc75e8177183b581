"""Photon detection and accumulation on a distributed LocalCluster (worker in another process).

The frames are the demo's recorded CBOR stream, read by the worker; the photon
kernel, the per-frame event tables and the per-chunk histograms, clean images and
frame sums all cross a process boundary by pickle. Results must be identical to
the threaded scheduler's: the same tasks run on the same chunks, only elsewhere.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.photon import detect
from beamcat.catalog.demo import photon as demo_photon

OPTIONS = {"threshold": 8.0, "energy_min": 1100.0, "energy_max": 1400.0}


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """The demo photon scan (60 uint16 frames of 256 x 256) as a recording, chunks of 7 frames."""
    folder = tmp_path_factory.mktemp("photon_distributed") / "photon"
    demo_photon.write(folder, np.random.default_rng([0, 1]))
    return beamcat.open_dataset(folder).chunk({"frame": 7})


def _both(obj, client):
    """`obj` computed by the threaded scheduler and on the LocalCluster."""
    (threaded,) = dask.compute(obj, scheduler="threads")
    (distributed,) = dask.compute(obj, scheduler=client)
    return threaded, distributed


def test_photon_detect_on_a_local_cluster_equal_threaded(scan, local_cluster_client):
    tables = scan.photon.detect(**OPTIONS)
    hist = tables.photon.histogram(40)
    image = tables.photon.clean_image()
    threaded, distributed = _both((tables, hist, image), local_cluster_client)
    for a, b in zip(threaded[1:], distributed[1:], strict=True):
        xr.testing.assert_identical(a, b)
    events = distributed[0].photon.events()
    xr.testing.assert_identical(events, threaded[0].photon.events())
    assert events.sizes["event"] > 1000  # the demo's photons: not a vacuous comparison
    # and the lazy analysis function's PhotonEvents the same way
    lazy = detect(scan.counts.assign_attrs(scan.attrs), **OPTIONS)
    xr.testing.assert_identical(lazy.compute(scheduler=local_cluster_client), events)


def test_accumulation_on_a_local_cluster_equal_threaded(scan, local_cluster_client):
    total, running = scan.accumulate.total(), scan.accumulate.running()
    threaded, distributed = _both((total, running), local_cluster_client)
    for a, b in zip(threaded, distributed, strict=True):
        xr.testing.assert_identical(a, b)
    assert int(distributed[0]["count"]) == 60
