"""``ds.spice``: prepare, fit, model on the demo SPICE raster and the real EIS window.

The accessor adds no numbers of its own: its fit is `prepare` then `fit_lines`
(compared exactly); what it adds is checked here: the instrument's default
steps, fused windows with a lock across them, EIS's per-pixel wavelength
correction, and the model and residual of a result.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses import linefit, spectral_prep
from beamcat.catalog import demo
from beamcat.catalog.eis import open_eis
from beamcat.errors import OptionError

EIS = "eispac_eis/eis_20210306_064444.data.h5"


@pytest.fixture(scope="module")
def windows(demo_dir):
    cat = beamcat.open_catalog(demo_dir / demo.CATALOG_NAME)
    return [cat[f"spice_window{k}"].read() for k in range(2)]


def test_fit_is_prepare_then_fit_lines_and_stays_lazy(windows, raise_if_dask_computes):
    window = windows[1]
    assert window.spice.default_steps() == ("preclean", "sigma", "despike")
    with raise_if_dask_computes():
        result = window.spice.fit()
    assert isinstance(result["intensity"].data, da.Array)
    assert result["intensity"].dims == ("line", "time", "y", "x")
    prepared = spectral_prep.prepare(window, ("preclean", "sigma", "despike"))
    spectra = prepared["radiance"].assign_attrs(window="Ne VIII 770")  # names the window coord
    direct = linefit.fit_lines(spectra, prepared["sigma"], lines={"ne_viii_1": 770.42})
    xr.testing.assert_allclose(result.compute(), direct.compute(), rtol=0, atol=0)
    assert "despike" in result.attrs["history"] and "fit_lines" in result.attrs["history"]
    assert result["window"].values.tolist() == ["Ne VIII 770"]


def test_model_is_the_fit_and_the_residual_the_rest(windows):
    window = windows[0]
    lazy = window.spice.fit(locks=[("o_iii_2", "o_iii_1", None)])
    result = lazy.compute()
    model = window.spice.model(result).compute()
    xr.testing.assert_allclose(window.spice.model(lazy).compute(), model)  # lazy in, lazy out
    assert model["components"]["component"].values.tolist() == [
        "o_iii_1",
        "o_iii_2",
        "mg_ix_1",
        "background",
    ]
    # the total is the sum of its components, and the residual the data minus the total
    np.testing.assert_allclose(model["components"].sum("component"), model["model"], rtol=1e-12)
    data = window["radiance"].transpose(*model["residual"].dims).values
    np.testing.assert_allclose(
        model["residual"].values, data - model["model"].transpose(*model["residual"].dims).values
    )
    # the lock holds exactly: rest-wavelength offset between the O III lines
    offset = result["center"].sel(line="o_iii_2") - result["center"].sel(line="o_iii_1")
    np.testing.assert_allclose(offset, 703.87 - 702.70, rtol=0, atol=1e-9)


def test_fused_windows_keep_a_lock_across_them(windows):
    sw, ne = windows
    # a lock between lines of two windows needs them fused
    with pytest.raises(OptionError, match="mg_ix_1|ne_viii_1|window"):
        ne.spice.fit(locks=[("ne_viii_1", "mg_ix_1", None)]).compute()
    result = sw.spice.fit(fuse=[ne], locks=[("ne_viii_1", "mg_ix_1", None)]).compute()
    assert result["window"].values.tolist() == ["O III 703 / Mg IX 706", "Ne VIII 770"]
    assert result["background"].dims[0] == "window"
    offset = result["center"].sel(line="ne_viii_1") - result["center"].sel(line="mg_ix_1")
    np.testing.assert_allclose(offset, 770.42 - 706.02, rtol=0, atol=1e-9)
    status = result["status"].values
    assert (np.isfinite(result["intensity"].values) | (status != 0)).all()


def test_eis_window_fits_its_own_line_with_corrected_centres(shared_data):
    window = open_eis(shared_data / EIS, window="Fe XII 192")
    window = window.isel(x=slice(0, 6), y=slice(100, 140))  # a corner: seconds
    assert window.spice.default_steps() == ("sigma", "despike")
    result = window.spice.fit().compute()
    (line,) = result["line"].values
    assert line.startswith("Fe XII 192")
    fitted = linefit.fit_lines(
        window.spice.prepare()["intensity"].assign_attrs(window.attrs),
        window.spice.prepare()["sigma"],
        lines={line: result["rest_wavelength"].item()},
        bounds={"width": (0.01, 0.2)},
    ).compute()
    # eispac's corrected wavelength is wavelength - wave_corr: the centres move by it
    shift = fitted["center"] - result["center"]
    wave_corr = np.broadcast_to(window["wave_corr"].values, shift.shape)
    np.testing.assert_allclose(shift.values, wave_corr)
    ok = result["status"].values == 0
    assert ok.mean() > 0.8
    assert (np.isfinite(result["intensity"].values) | ~ok).all()


def test_step_methods_chain_to_what_prepare_gives(windows, raise_if_dask_computes):
    window = windows[1]
    with raise_if_dask_computes():
        chained = window.spice.preclean().spice.noise().spice.despike().spice.convolve(3)
    prepared = window.spice.prepare(("preclean", "sigma", "despike", "convolve"), box=3)
    xr.testing.assert_identical(chained.compute(), prepared.compute())
    assert chained.attrs["history"].count("\n") >= 3  # a line per step
    binned = window.spice.noise().spice.bin((2, 3))
    assert binned.sizes["y"] == 48 and binned.sizes["x"] == 16
    assert set(binned.data_vars) == {"radiance", "sigma"}
