"""fit_lines on a distributed LocalCluster (worker in another process).

The model, the chunk function and its options cross a process boundary by
pickle, and the numba kernel runs in the worker: the result must be identical
to the threaded scheduler's (the same chunks fitted by the same kernel).
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from beamcat.analyses.linefit import FitStatus, evaluate, fit_lines, line_model


def test_fit_lines_on_a_local_cluster_equal_threaded(local_cluster_client):
    model = line_model({"a": 700.0, "b": 701.2}, locks=[("b", "a", None)], background="linear")
    wave = 698.8 + 0.1 * np.arange(40)
    rng = np.random.default_rng(7)
    truth = model.expand(np.column_stack([
        rng.uniform(1, 3, 48), 700.0 + rng.uniform(-0.05, 0.05, 48), np.full(48, 0.35),
        rng.uniform(1, 3, 48), np.full(48, 0.4), np.full(48, 0.2), np.full(48, 0.01),
    ]))  # fmt: skip
    clean, _ = evaluate(model, truth, wave)
    data = (clean + rng.normal(size=clean.shape) * 0.03).reshape(6, 8, 40)
    cube = xr.DataArray(data, dims=("y", "x", "wavelength"), coords={"wavelength": wave})
    maps = fit_lines(cube.chunk({"y": 2}), xr.full_like(cube, 0.03).chunk({"y": 2}), model)
    (threaded,) = dask.compute(maps, scheduler="threads")
    (distributed,) = dask.compute(maps, scheduler=local_cluster_client)
    xr.testing.assert_identical(distributed, threaded)
    assert (distributed["status"] == FitStatus.CONVERGED).all()
