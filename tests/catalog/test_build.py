"""Catalog building, the trust check, Intake registration and the CLI catalog commands."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from beamcat.catalog.build import add_source, describe_entries, load_catalog
from beamcat.catalog.catalogs import open_catalog
from beamcat.cli import main
from beamcat.errors import CatalogError, SourceNotFoundError, UntrustedCatalogError


@pytest.fixture
def stack(tmp_path) -> Path:
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    folder = tmp_path / "data" / "run1"
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"frame_{i}.tif", frame)
    return folder


def test_add_source_round_trips_through_intake(tmp_path, stack):
    catalog = tmp_path / "data" / "catalog.yaml"
    meta = {"instrument": "IMAT", "sample": "reactor", "run": 1, "description": "demo"}
    add_source(catalog, "run1", stack, format="tiff", metadata=meta)
    cat = open_catalog(catalog)
    assert list(cat) == ["run1"]
    (row,) = describe_entries(cat)
    assert row["format"] == "tiff"
    assert row["metadata"] == meta
    # the source lies beside the catalog, so it is stored relative to it
    assert row["source"] == "{CATALOG_DIR}/run1"
    assert "{CATALOG_DIR}" in catalog.read_text()


def test_entry_reads_the_same_as_open_dataset(tmp_path, stack):
    import beamcat

    catalog = tmp_path / "data" / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff")
    ds = open_catalog(catalog)["run1"].read()
    ref = beamcat.open_dataset(stack)
    np.testing.assert_array_equal(ds[ds.attrs["signal"]].values, ref[ref.attrs["signal"]].values)


def test_catalog_moves_with_its_data(tmp_path, stack):
    catalog = tmp_path / "data" / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff")
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    cat = open_catalog(moved / "catalog.yaml")
    reader = cat["run1"]
    assert reader.data.url.endswith("moved/run1")


def test_replacing_an_entry_keeps_one(tmp_path, stack):
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff", metadata={"run": 1})
    add_source(catalog, "run1", stack, format="tiff", metadata={"run": 2}, replace=True)
    (row,) = describe_entries(open_catalog(catalog))
    assert row["metadata"] == {"run": 2}
    assert not list(tmp_path.glob(".catalog.yaml*"))  # no temp file left behind


def test_adding_a_taken_name_refuses_without_replace(tmp_path, stack):
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff", options={"timezone": "Europe/London"})
    before = catalog.read_text()
    with pytest.raises(CatalogError, match=r"catalog.yaml: already has an entry 'run1'.*replace"):
        add_source(catalog, "run1", stack, format="tiff")
    assert catalog.read_text() == before  # the entry and its options are kept


def test_cli_catalog_add_refuses_a_taken_name_unless_replace(tmp_path, stack, capsys):
    catalog = str(tmp_path / "c.yaml")
    add = ["catalog", "add", "run1", str(stack), "--format", "tiff", "--catalog", catalog]
    assert main([*add, "--meta", "run=1"]) == 0
    assert main([*add, "--meta", "run=2"]) == 1
    assert "already has an entry 'run1'" in capsys.readouterr().err
    assert describe_entries(open_catalog(catalog))[0]["metadata"] == {"run": 1}
    assert main([*add, "--meta", "run=2", "--replace"]) == 0
    assert describe_entries(open_catalog(catalog))[0]["metadata"] == {"run": 2}


def test_a_missing_entry_names_the_entries_there_are(tmp_path, stack):
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff")
    add_source(catalog, "run2", stack, format="tiff")
    cat = open_catalog(catalog)
    expected = r"catalog.yaml: no entry 'run3'; the entries are: run1, run2"
    with pytest.raises(CatalogError, match=expected):
        cat["run3"]
    with pytest.raises(KeyError):  # still a KeyError, as Intake and dict users expect
        cat["run3"]
    assert not hasattr(cat, "run3")  # attribute access still says AttributeError
    assert cat["run1"].read().sizes["frame"] == 3


@pytest.mark.parametrize(
    "template",
    ["{func(os:system)}", "{import(os:getcwd)}", "{env(HOME)}/x.tif", "{pickle64(gASVAAAA)}"],
)
def test_code_running_templates_are_refused_unless_trusted(tmp_path, stack, template):
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff")
    data = yaml.safe_load(catalog.read_text())
    (token,) = data["data"]
    data["data"][token]["kwargs"]["url"] = template
    catalog.write_text(yaml.safe_dump(data))
    with pytest.raises(UntrustedCatalogError, match="trusted=True") as err:
        open_catalog(catalog)
    assert str(catalog) in str(err.value) and template in str(err.value)
    assert list(load_catalog(catalog, trusted=True)) == ["run1"]


def test_foreign_reader_class_is_refused(tmp_path, stack):
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "run1", stack, format="tiff")
    data = yaml.safe_load(catalog.read_text())
    (token,) = data["entries"]
    data["entries"][token]["reader"] = "subprocess:Popen"
    catalog.write_text(yaml.safe_dump(data))
    with pytest.raises(UntrustedCatalogError, match="subprocess:Popen"):
        open_catalog(catalog)


def test_bad_catalog_files(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such catalog"):
        open_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries: [1, 2\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        open_catalog(bad)
    bad.write_text("version: 1\nsources: {}\n")
    with pytest.raises(CatalogError, match="version: 2"):
        open_catalog(bad)


def test_bad_entry_name_and_format(tmp_path, stack):
    with pytest.raises(CatalogError, match="entry name"):
        add_source(tmp_path / "c.yaml", "bad name", stack, format="tiff")
    with pytest.raises(CatalogError, match="unknown format"):
        add_source(tmp_path / "c.yaml", "ok", stack, format="jpeg")


def test_intake_knows_the_readers_through_the_entry_point():
    import intake  # importing intake imports the `intake.imports` entry points
    from intake.readers.datatypes import recommend

    from beamcat.catalog.intake_readers import READERS

    names = {cls.__name__ for cls in intake.readers.subclasses(intake.readers.BaseReader)}
    assert {cls.__name__ for cls in READERS.values()} <= names
    assert any("MerlinMIB" in cls.__name__ for cls in recommend("scan.mib"))


def test_cli_catalog_add_list_show(tmp_path, stack, capsys):
    catalog = tmp_path / "c.yaml"
    rc = main(
        [
            "catalog", "add", "run1", str(stack), "--format", "tiff",
            "--option", "timezone=Europe/London", "--meta", "sample=sand", "--meta", "run=7",
            "--catalog", str(catalog),
        ]
    )  # fmt: skip
    assert rc == 0
    assert main(["catalog", "list", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "run1" in out and "sample=sand" in out and "run=7" in out
    (row,) = describe_entries(open_catalog(catalog))
    assert row["options"] == {"timezone": "Europe/London"}
    assert row["metadata"] == {"sample": "sand", "run": 7}  # values read as YAML


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    rc = main(
        ["catalog", "add", "x", str(tmp_path / "none*.tif"), "--catalog", str(tmp_path / "c.yaml")]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("beamcat: error:") and "matches no file" in err
    assert main(["catalog", "add", "x", str(tmp_path), "--option", "novalue"]) == 1
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_path_options_move_with_the_catalog(tmp_path, stack):
    from beamcat.catalog.logs import write_imat_log

    times = np.datetime64("2024-12-13T11:00:00") + np.arange(3) * np.timedelta64(10, "s")
    write_imat_log(stack.parent / "log.csv", times, [1, 2, 3])
    catalog = tmp_path / "data" / "catalog.yaml"
    options = {"frame_log": stack.parent / "log.csv", "timezone": "UTC"}  # the log's clock
    add_source(catalog, "run1", stack, options=options)
    assert "{CATALOG_DIR}/log.csv" in catalog.read_text()
    (tmp_path / "data").rename(tmp_path / "moved")
    ds = open_catalog(tmp_path / "moved" / "catalog.yaml")["run1"].read()
    np.testing.assert_array_equal(ds["time"].values, times.astype("datetime64[ns]"))


def test_catalog_entries_can_set_attrs_the_files_lack(tmp_path, stack):
    catalog = tmp_path / "c.yaml"
    add_source(catalog, "run1", stack, options={"attrs": {"pixel_size": 5.5e-5, "energy": 8048}})
    ds = open_catalog(catalog)["run1"].read()
    assert ds.attrs["pixel_size"] == 5.5e-5 and ds.attrs["energy"] == 8048
    assert ds.attrs["format"] == "tiff"  # the reader's own attrs stay
