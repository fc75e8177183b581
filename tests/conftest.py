"""Shared fixtures: the real files in ../shared/data and a dask scheduler that forbids computing."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import dask
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    env = os.environ.get("BEAMCAT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "data", ROOT / ".." / ".." / "shared" / "data"]
    for c in candidates:
        if (c / "PROVENANCE.md").exists():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real files from other projects (../shared/data), read in place."""
    path = _find_shared_data()
    if path is None:
        pytest.fail("../shared/data not found beside the checkout (set BEAMCAT_SHARED_DATA)")
    return path


class _CountingScheduler:
    """A dask scheduler that counts calls and raises past a maximum (xarray's idiom)."""

    def __init__(self, max_computes: int = 0):
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many computes: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def raise_if_dask_computes():
    """Context-manager factory: ``with raise_if_dask_computes(): ...`` fails on any compute."""

    @contextlib.contextmanager
    def _ctx(max_computes: int = 0):
        with dask.config.set(scheduler=_CountingScheduler(max_computes)):
            yield

    return _ctx


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo samples and catalog (`make_demo`, seed 0), written once: tests only read it."""
    from beamcat.catalog import demo

    folder = tmp_path_factory.mktemp("demo")
    demo.make_demo(folder)
    return folder


@pytest.fixture(scope="session")
def local_cluster_client():
    """A `distributed.Client` on a one-worker, two-thread LocalCluster in its own process.

    ``processes=True``: every graph computed on it is pickled to the worker, so a
    result equal to the threaded scheduler's proves the graph (kernels, readers,
    partials) travels. Not set as the default scheduler: compute with
    ``client.compute(...)`` or ``dask.compute(..., scheduler=client)``. Closed at
    teardown.
    """
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client
