"""``run_gainmap`` on the demo positions: every file written, all holding the analysis' map.

The numbers of the map itself are checked against the planted gain in
tests/analyses/test_gainmap.py; here the files must agree with each other and with
the Dataset, the summary with the files, and calibrant refinement must feed the map.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import beamcat
from beamcat.analyses.geometry import read_poni
from beamcat.catalog import demo
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.gain_files import NEXUS_VARIABLES
from beamcat.errors import CatalogError, OptionError
from beamcat.workflows.gainmap import SUMMARY_NAME, calibrated_geometries, run_gainmap

ENTRIES = [f"gainmap_pos{k}" for k in range(1, 6)]


@pytest.fixture(scope="module")
def catalog(demo_dir):
    return open_catalog(demo_dir / demo.CATALOG_NAME)


@pytest.fixture(scope="module")
def job(catalog, demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gainmap")
    summary = run_gainmap(
        ENTRIES, out=out, catalog=catalog, polarization_factor=0.99, progress=False
    )
    return out, summary


def _one(summary, kind) -> Path:
    (path,) = summary["files"][kind]
    return Path(path)


def test_files_hold_the_same_map(job):
    out, summary = job
    gain_file = beamcat.open_dataset(_one(summary, "gain_tiff"))
    correction_file = beamcat.open_dataset(_one(summary, "correction_tiff"))
    assert gain_file.attrs["form"] == "gain" and correction_file.attrs["form"] == "correction"
    gain = gain_file.counts.values[0].astype(np.float64)
    nexus = beamcat.open_dataset(_one(summary, "nexus"), variables=NEXUS_VARIABLES)
    np.testing.assert_array_equal(nexus.counts.values, gain_file.counts.values[0])  # both float32
    np.testing.assert_allclose(correction_file.counts.values[0], 1 / gain, rtol=1e-6)
    gsas = beamcat.open_dataset(_one(summary, "gsas2_map")).counts.values[0]
    thousandths = np.floor(1000 / gain)
    ok = np.isfinite(thousandths) & (thousandths <= 2000)
    # float32 storage of the gain can move a value across an integer: at most 1 apart
    assert np.abs(gsas[ok] - thousandths[ok]).max() <= 1 and (gsas[~ok] == 0).all()
    unfiltered = beamcat.open_dataset(_one(summary, "unfiltered_tiff")).counts.values[0]
    assert np.nanstd(unfiltered) > np.nanstd(gain)  # the filter smooths the map
    assert summary["valid"] == int(nexus.valid.values.sum())
    assert (
        summary["damaged"] == int(nexus.damaged.values.sum()) == len(summary["damaged_pixels_yx"])
    )
    for y, x in summary["damaged_pixels_yx"]:
        assert nexus.damaged.values[y, x]


def test_summary_figures_and_names(job, demo_dir):
    out, summary = job
    assert json.loads((out / SUMMARY_NAME).read_text()) == summary
    assert summary["geometries"] == [
        str((demo_dir / "gainmap" / f"pos{k}.poni").resolve()) for k in range(1, 6)
    ]
    assert summary["options"] == {"polarization_factor": 0.99}
    # the correction lowers the spread of the positions' patterns (with the 3x3 filter: ~3x)
    assert summary["spread_ratio"] > 2
    assert summary["flat_range_deg"][1] <= summary["common_range_deg"][1]
    for kind in ("gain_map_figure", "profiles_figure", "spread_figure"):
        with Image.open(_one(summary, kind)) as png:
            assert png.format == "PNG"
    assert _one(summary, "gain_tiff").name.startswith("gain_map_20")  # <name>_YYYY-MM-DD.tif


def test_calibrant_images_refine_the_geometry(catalog, demo_dir, tmp_path):
    # the demo's CeO2 image, started 0.5 mm and a few pixels off its PONI
    truth = read_poni(demo_dir / "diffraction" / "CeO2_Pilatus200K.poni")
    start = truth.with_(dist=truth.integrator.dist + 5e-4, poni1=truth.integrator.poni1 + 5e-4)
    (found,) = calibrated_geometries([catalog["diffraction_ceo2"].read()], "CeO2", [start])
    assert found.geometry.integrator.dist == pytest.approx(truth.integrator.dist, abs=1e-4)
    with pytest.raises(OptionError, match="2 calibrant images but 1 PONIs"):
        calibrated_geometries([None, None], "CeO2", [start])


def test_unknown_entry_says_which(catalog, tmp_path):
    with pytest.raises(CatalogError, match="entry 'gainmap_pos9'.*gainmap_pos1"):
        run_gainmap(["gainmap_pos1", "gainmap_pos9"], out=tmp_path, catalog=catalog)
