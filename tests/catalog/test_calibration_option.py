"""The ``calibration=`` option every format takes: a 4D-STEM calibration travels with the entry.

The catalog reads ePSIC's JSON itself; what is compared is the dict that lands
in ``attrs["calibration"]`` (the JSON's numbers exactly, its absolute path),
the path stored relative to the catalog in the YAML, the demo's ``stem4d_scan``
carrying its planted calibration, and that a missing or broken JSON fails at
open or add time with the source or entry and the keys expected named.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr

import beamcat
from beamcat.catalog.build import add_source
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.demo import read_truth
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

# p_ellipse in py4DSTEM's axes (ePSIC's notebooks): row, column, a, b, angle from the rows
DOC = {
    "reciprocal_space_pix": 0.0145,
    "p_ellipse": [63.1, 64.3, 47.8, 46.4, 0.5],
    "voltage_kv": 300,
}
EXPECTED = {  # beamcat's axes: x0 the column, theta = π/2 - angle from +x towards +y
    "x0": 64.3,
    "y0": 63.1,
    "a": 47.8,
    "b": 46.4,
    "theta": np.pi / 2 - 0.5,
    "reciprocal_pixel_size": 0.0145,
    "voltage_kv": 300,
}


@pytest.fixture
def data(tmp_path) -> Path:
    """A folder with a 2-frame TIFF ``run1.tif`` and its calibration ``au.json``."""
    folder = tmp_path / "data"
    folder.mkdir()
    tifffile.imwrite(folder / "run1.tif", np.zeros((2, 4, 5), np.int32))
    (folder / "au.json").write_text(json.dumps(DOC))
    return folder


def test_open_dataset_reads_the_json_into_attrs(data, monkeypatch):
    monkeypatch.chdir(data)
    ds = beamcat.open_dataset("run1.tif", calibration="au.json")
    assert ds.attrs["calibration"] == {**EXPECTED, "source": str(data / "au.json")}
    assert ds.attrs["format"] == "tiff"  # the reader's attrs stay
    assert "calibration" not in beamcat.open_dataset("run1.tif").attrs


def test_the_xarray_backend_takes_the_option(data):
    ds = xr.open_dataset(data / "run1.tif", engine="beamcat", calibration=data / "au.json")
    assert ds.attrs["calibration"]["reciprocal_pixel_size"] == 0.0145


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", r"au\.json: not JSON"),
        (json.dumps({"p_ellipse": [1, 2, 3, 4, 0]}), r"expected keys reciprocal_space_pix"),
        (json.dumps({"reciprocal_space_pix": 0.01}), r"found \['reciprocal_space_pix'\]"),
        (json.dumps([1, 2]), r"expected keys reciprocal_space_pix .*found list"),
        (json.dumps({**DOC, "p_ellipse": [1, 2, 3, 4]}), "as finite numbers"),
        (json.dumps({**DOC, "p_ellipse": [1, 2, "3", 4, 0]}), "as finite numbers"),
        (json.dumps({**DOC, "reciprocal_space_pix": -1}), "must be > 0"),
    ],
)
def test_a_broken_json_names_the_source_file_and_keys(data, content, match):
    (data / "au.json").write_text(content)
    with pytest.raises(FormatError, match=match) as info:
        beamcat.open_dataset(data / "run1.tif", calibration=data / "au.json")
    assert "run1" in str(info.value) and "au.json" in str(info.value)


def test_a_missing_json_or_not_a_path_names_it(data):
    with pytest.raises(
        SourceNotFoundError, match=r"run1\.tif: calibration JSON .*nope\.json not found"
    ):
        beamcat.open_dataset(data / "run1.tif", calibration=data / "nope.json")
    with pytest.raises(OptionError, match="must be a path, got 3"):
        beamcat.open_dataset(data / "run1.tif", calibration=3)


def test_catalog_stores_the_json_relative_and_the_entry_moves_with_it(data, tmp_path):
    add_source(
        data / "cat.yaml", "run1", data / "run1.tif", options={"calibration": data / "au.json"}
    )
    # stored like the source, relative to the catalog: the folder can move
    assert "calibration: '{CATALOG_DIR}/au.json'" in (data / "cat.yaml").read_text()
    moved = data.rename(tmp_path / "moved")
    found = open_catalog(moved / "cat.yaml")["run1"].read().attrs["calibration"]
    assert found == {**EXPECTED, "source": str(moved / "au.json")}


def test_add_source_refuses_a_missing_or_broken_json_naming_the_entry(data):
    catalog = data / "catalog.yaml"
    with pytest.raises(SourceNotFoundError, match=r"catalog\.yaml: entry 'run1': calibration"):
        add_source(catalog, "run1", data / "run1.tif", options={"calibration": data / "no.json"})
    (data / "au.json").write_text("{}")
    with pytest.raises(FormatError, match=r"entry 'run1': calibration JSON .*expected keys"):
        add_source(catalog, "run1", data / "run1.tif", options={"calibration": data / "au.json"})
    assert not catalog.exists()  # nothing written


def test_the_demo_scan_carries_its_planted_calibration(demo_dir):
    scalars, _ = read_truth(demo_dir / "stem4d")
    ds = open_catalog(demo_dir / "catalog.yaml")["stem4d_scan"].read()
    found = ds.attrs["calibration"]
    # the JSON holds py4DSTEM's π/2 - θ: θ back to rounding
    assert [found[k] for k in scalars["ellipse"]] == pytest.approx(
        list(scalars["ellipse"].values())
    )
    assert found["reciprocal_pixel_size"] == scalars["reciprocal_pixel_size"]
    assert found["reflection"] == "220" and Path(found["source"]).is_file()


def test_the_analyses_read_what_the_catalog_wrote(data):
    # the round trip the option exists for: AuCalibration.from_attrs takes the Dataset's attrs
    from beamcat.analyses.stem4d_calibration import AuCalibration

    ds = beamcat.open_dataset(data / "run1.tif", calibration=data / "au.json")
    assert AuCalibration.from_attrs(ds.attrs) == AuCalibration(**EXPECTED)
    assert AuCalibration.load(data / "au.json") == AuCalibration(**EXPECTED)
