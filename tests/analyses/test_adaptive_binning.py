"""Adaptive binning: each pixel fitted at the first box level whose errors meet the thresholds."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from beamcat.analyses import spectral_prep as sp
from beamcat.analyses.adaptive_binning import THRESHOLDS, adaptive_fit
from beamcat.analyses.linefit import FitStatus, fit_lines, line_model
from beamcat.catalog.demo import spice as demo
from beamcat.catalog.spice import open_spice
from beamcat.errors import OptionError

LEVELS = (0, 1, 2, 3)
# looser than SAFFRON's 1 % on I and s: the Ne VIII fits of this corner have relative
# intensity errors of 2.2 % (median) at level 0, so 2.2 % splits its pixels between
# levels 0 and 1 (SAFFRON's own thresholds put nearly all of them at the largest box)
LOOSE = {"intensity": 0.022, "width": 0.04}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adaptive") / "spice"
    demo.write(folder, np.random.default_rng(0))
    ds = open_spice(folder / demo.FILE, window=1).isel(y=slice(0, 40), x=slice(0, 24))
    return ds, sp.prepare(ds.chunk({"y": 20}))


def test_each_pixel_takes_the_first_level_that_meets_the_thresholds(
    prepared, raise_if_dask_computes
):
    ds, prep = prepared
    model = line_model({"ne_viii_1": 770.42})
    pixel = (ds.CDELT2, ds.CDELT1)
    with raise_if_dask_computes():
        out = adaptive_fit(
            prep.radiance, prep.sigma, model, levels=LEVELS, pixel_size=pixel, thresholds=LOOSE
        )
    assert isinstance(out.level.data, da.Array)
    out = out.compute()
    # the reference: every level fitted on its own, the rule applied pixel by pixel in NumPy
    limits = np.array([{**THRESHOLDS, **LOOSE}[model.kind(i)] for i in range(4)])
    per_level = []
    for level in LEVELS:
        box = sp.box_size(level, pixel)
        values, errors = (
            (prep.radiance, prep.sigma)
            if box == (1, 1)
            else sp.convolve(prep.radiance, prep.sigma, box)
        )
        per_level.append(fit_lines(values, errors, model).compute())
    rel = np.stack([np.abs(f.parameter_errors / f.parameters).values / limits for f in per_level])
    ok = np.stack(
        [np.isin(f.status.values, [FitStatus.CONVERGED, FitStatus.AT_BOUND]) for f in per_level]
    )
    met = ok & (rel < 1).all(-1)
    expected = np.where(
        met.any(0),
        met.argmax(0),
        np.nan_to_num(np.where(ok, np.nansum(rel, -1), np.inf), nan=np.inf).argmin(0),
    )
    np.testing.assert_array_equal(out.level.values, np.asarray(LEVELS)[expected])
    counts = np.bincount(out.level.values.ravel())
    assert (counts[:2] > 0.2 * out.level.size).all()  # both levels well used
    # each pixel carries the fit of its level, exactly
    chosen = np.take_along_axis(
        np.stack([f.intensity.values for f in per_level]), expected[None, None], 0
    )[0]
    np.testing.assert_array_equal(out.intensity.values, chosen)
    # bigger boxes, smaller errors: where a pixel moved up, its relative error fell
    moved = out.level.values > 0
    rel0 = (per_level[0].intensity_error / per_level[0].intensity).values[0][moved]
    rel = (out.intensity_error / out.intensity).values[0][moved]
    assert np.median(rel / rel0) < 0.8
    assert "adaptive_fit" in out.attrs["history"]


def test_adaptive_fit_bad_options(prepared):
    _, prep = prepared
    with pytest.raises(OptionError, match="model= or lines="):
        adaptive_fit(prep.radiance, prep.sigma)
    with pytest.raises(OptionError, match="thresholds for"):
        adaptive_fit(prep.radiance, prep.sigma, lines={"a": 770.4}, thresholds={"peak": 1})
