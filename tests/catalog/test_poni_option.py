"""The ``poni=`` / ``poni_flip=`` options every format takes: the geometry travels with the entry.

The catalog layer only finds the PONI file; what is compared here is where the
path lands (``attrs["poni"]``, absolute, relative to the catalog in the YAML)
and that a missing file fails at open or add time with the entry or source named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr

import beamcat
from beamcat.catalog.build import add_source, describe_entries
from beamcat.catalog.catalogs import open_catalog
from beamcat.cli import main
from beamcat.errors import OptionError, SourceNotFoundError

PONI = """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
PixelSize1: 0.000172
PixelSize2: 0.000172
Distance: 0.2
Poni1: 0.01
Poni2: 0.02
Rot1: 0.0
Rot2: 0.0
Rot3: 0.0
SplineFile: None
Wavelength: 1e-10
"""


@pytest.fixture
def data(tmp_path) -> Path:
    """A folder with a 2-frame TIFF stack ``run1/`` and its PONI ``run1.poni``."""
    folder = tmp_path / "data"
    (folder / "run1").mkdir(parents=True)
    for i in range(2):
        tifffile.imwrite(folder / "run1" / f"f_{i}.tif", np.full((4, 5), i, np.int32))
    (folder / "run1.poni").write_text(PONI)
    return folder


def test_open_dataset_puts_the_absolute_poni_path_into_attrs(data, monkeypatch):
    monkeypatch.chdir(data)
    ds = beamcat.open_dataset("run1", poni="run1.poni", poni_flip=True)
    assert ds.attrs["poni"] == str(data / "run1.poni") and Path(ds.attrs["poni"]).is_absolute()
    assert ds.attrs["poni_flip"] == 1
    assert ds.attrs["format"] == "tiff"  # the reader's attrs stay
    plain = beamcat.open_dataset("run1")
    assert "poni" not in plain.attrs and "poni_flip" not in plain.attrs
    # the generic attrs= option and poni= together; poni= wins over an attrs "poni"
    both = beamcat.open_dataset("run1", attrs={"energy": 8048, "poni": "x"}, poni="run1.poni")
    assert both.attrs["energy"] == 8048 and both.attrs["poni"] == str(data / "run1.poni")
    assert both.attrs["poni_flip"] == 0


def test_the_xarray_backend_takes_the_option(data):
    ds = xr.open_dataset(data / "run1", engine="beamcat", poni=data / "run1.poni")
    assert ds.attrs["poni"] == str(data / "run1.poni") and ds.attrs["poni_flip"] == 0


def test_bad_poni_options_name_the_source_and_the_file(data):
    with pytest.raises(SourceNotFoundError, match=r"run1: PONI file \(poni=\) .*nope\.poni"):
        beamcat.open_dataset(data / "run1", poni=data / "nope.poni")
    with pytest.raises(OptionError, match="poni_flip=True needs the PONI file"):
        beamcat.open_dataset(data / "run1", poni_flip=True)
    with pytest.raises(OptionError, match="poni_flip must be true or false, got 'yes'"):
        beamcat.open_dataset(data / "run1", poni=data / "run1.poni", poni_flip="yes")
    with pytest.raises(OptionError, match="must be a path, got 3"):
        beamcat.open_dataset(data / "run1", poni=3)


def test_catalog_stores_the_poni_relative_and_the_entry_moves_with_it(data, tmp_path):
    catalog = data / "catalog.yaml"
    add_source(catalog, "run1", data / "run1", options={"poni": data / "run1.poni"})
    (row,) = describe_entries(open_catalog(catalog))
    assert row["options"]["poni"] == "{CATALOG_DIR}/run1.poni"  # like the source
    moved = data.rename(tmp_path / "moved")
    ds = open_catalog(moved / "catalog.yaml")["run1"].read()
    assert ds.attrs["poni"] == str(moved / "run1.poni") and ds.attrs["poni_flip"] == 0
    # the file went missing after the entry was written: the open names it
    (moved / "run1.poni").unlink()
    with pytest.raises(SourceNotFoundError, match=r"run1\.poni not found"):
        open_catalog(moved / "catalog.yaml")["run1"].read()


def test_add_source_refuses_a_missing_poni_naming_the_entry(data):
    catalog = data / "catalog.yaml"
    with pytest.raises(SourceNotFoundError, match=r"catalog\.yaml: entry 'run1': PONI file"):
        add_source(catalog, "run1", data / "run1", options={"poni": data / "missing.poni"})
    assert not catalog.exists()  # nothing written


def test_cli_catalog_add_takes_poni_and_flip(data, capsys):
    catalog = data / "catalog.yaml"
    args = ["catalog", "add", "run1", str(data / "run1"), "--catalog", str(catalog)]
    assert main([*args, "--poni", str(data / "run1.poni"), "--poni-flip"]) == 0
    ds = open_catalog(catalog)["run1"].read()
    assert ds.attrs["poni"] == str(data / "run1.poni") and ds.attrs["poni_flip"] == 1
    capsys.readouterr()
    assert (
        main(
            ["catalog", "add", "run2", str(data / "run1"), "--catalog", str(catalog), "--poni-flip"]
        )
        == 1
    )
    assert "poni_flip=True needs the PONI file" in capsys.readouterr().err


def test_the_geometry_layer_reads_what_the_catalog_wrote(data):
    # the round trip the option exists for (analyses parse, the catalog only finds the file)
    from beamcat.analyses.geometry import as_geometry

    ds = beamcat.open_dataset(data / "run1", poni=data / "run1.poni", poni_flip=True)
    geo = as_geometry(ds)
    assert geo.flip and geo.source == str(data / "run1.poni")
    assert geo.integrator.dist == pytest.approx(0.2)
