"""`run_spice` on the demo raster and the real SPICE exposure: files, summary, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import beamcat
from beamcat.catalog import demo
from beamcat.errors import OptionError
from beamcat.workflows.spice import SUMMARY_NAME, parse_lock, run_spice

SPICE_REAL = "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits"


@pytest.fixture(scope="module")
def catalog(demo_dir):
    return beamcat.open_catalog(demo_dir / demo.CATALOG_NAME)


def test_demo_windows_give_maps_l3_files_figures_and_summary(catalog, tmp_path):
    out = tmp_path / "out"
    summary = run_spice(
        ["spice_window0", "spice_window1"],
        out=out,
        catalog=catalog,
        locks=["o_iii_2:o_iii_1"],
        progress=False,
    )
    assert json.loads((out / SUMMARY_NAME).read_text()) == summary
    first, second = summary["fits"]
    assert first["lines"] == ["o_iii_1", "o_iii_2", "mg_ix_1"]
    assert first["locks"] == [["o_iii_2", "o_iii_1", None]] and second["locks"] == []
    for fit in summary["fits"]:
        assert sum(fit["status"].values()) == 96 * 48  # every pixel has a status
        assert fit["status"].get("converged", 0) > 0.9 * 96 * 48
        assert 0.8 < fit["median_reduced_chi2"] < 1.2  # the demo's noise is the sigma used
    # the store and the L3 files read back through open_dataset with the fitted numbers
    (store,) = first["files"]["zarr"]
    stored = beamcat.open_dataset(store)
    window = catalog["spice_window0"].read()
    fitted = window.spice.fit(locks=[("o_iii_2", "o_iii_1", None)]).compute()
    np.testing.assert_array_equal(stored["intensity"].values, fitted["intensity"].values)
    l3 = [beamcat.open_dataset(path) for path in first["files"]["l3"]]
    assert len(l3) == 3
    assert all(path.endswith(".fits") for path in first["files"]["l3"])
    # FITS holds float32: the maps as written to single precision
    line = l3[0]["intensity"].squeeze()
    want = fitted["intensity"].sel(line="o_iii_1").squeeze()
    np.testing.assert_allclose(np.asarray(line), want.astype(np.float32).values, rtol=1e-6)
    assert all(p.endswith(".png") for p in first["files"]["figure"])
    # a second run refuses to replace the stores
    with pytest.raises(OptionError, match="already exists"):
        run_spice(["spice_window1"], out=out, catalog=catalog, progress=False)


def test_real_exposure_runs_end_to_end_with_honest_statuses(shared_data, tmp_path):
    # low-signal calibration windows with no catalog line: skipped, or fitted with given lines
    source = shared_data / SPICE_REAL
    summary = run_spice([source], out=tmp_path / "a", progress=False)
    assert summary["fits"] == [] and len(summary["skipped"]) == 2
    lines = {"probe_sw": 698.0, "probe_lw": 967.5}
    # sospice has no noise model for these wavelengths: sigma = 1, said
    with pytest.warns(beamcat.errors.BeamcatWarning, match="sigma = 1"):
        summary = run_spice([source], out=tmp_path / "b", lines=lines, l3=False, progress=False)
    for fit in summary["fits"]:
        assert sum(fit["status"].values()) == 1024  # one slit position, 1024 pixels along it
        result = beamcat.open_dataset(fit["files"]["zarr"][0])
        nan = ~np.isfinite(result["intensity"].values)
        # a NaN parameter never comes with CONVERGED
        assert not (nan & (result["status"].values == 0)).any()
        assert fit["status"].get("no_data", 0) > 0  # the all-NaN rows along the slit


def test_bad_input_names_it(catalog, tmp_path):
    with pytest.raises(OptionError, match="LINE_B:LINE_A"):
        parse_lock("o_iii_2")
    with pytest.raises(OptionError, match="not in one fitted window"):
        run_spice(["spice_window1"], out=tmp_path, catalog=catalog, locks=["x:y"], progress=False)
    with pytest.raises(beamcat.errors.SourceNotFoundError, match="nowhere"):
        run_spice(["nowhere"], out=tmp_path, catalog=catalog, progress=False)
