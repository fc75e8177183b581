"""Source expansion: files, folders, globs and lists, in natural order."""

import pytest

from beamcat.catalog._paths import expand_source
from beamcat.catalog.formats import open_dataset, sniff_format
from beamcat.errors import FormatError, OptionError, SourceNotFoundError


@pytest.fixture
def folder(tmp_path):
    for name in ["f_10.tif", "f_2.tif", "f_1.tif", ".hidden.tif", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_folder_in_natural_order_with_suffix_filter(folder):
    names = [p.name for p in expand_source(folder, suffixes=(".tif",))]
    assert names == ["f_1.tif", "f_2.tif", "f_10.tif"]


def test_glob_and_list(folder):
    assert [p.name for p in expand_source(folder / "f_*.tif")] == ["f_1.tif", "f_2.tif", "f_10.tif"]
    files = expand_source([folder / "f_2.tif", folder / "f_1.tif"])
    assert [p.name for p in files] == ["f_2.tif", "f_1.tif"]  # a list keeps the caller's order


@pytest.mark.parametrize(
    ("source", "match"),
    [("nothing_*.tif", "matches no file"), ("missing.tif", "no such file"), ([], "empty list")],
)
def test_missing_sources_raise(folder, source, match):
    source = [] if source == [] else folder / source
    with pytest.raises(SourceNotFoundError, match=match):
        expand_source(source)


def test_empty_folder_names_what_was_wanted(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"\.fits"):
        expand_source(tmp_path, suffixes=(".fits",))


def test_sniff_by_name_and_unknown(folder):
    assert sniff_format(folder / "f_1.tif") == "tiff"
    (folder / "a.bin").write_bytes(b"\0")
    with pytest.raises(FormatError, match="pass format="):
        sniff_format(folder / "a.bin")
    with pytest.raises(OptionError, match="unknown format 'jpeg'"):
        open_dataset(folder / "f_1.tif", format="jpeg")


def test_sniff_real_files(shared_data):
    cases = {
        "dioptas/CeO2_Pilatus1M.tif": "tiff",
        "epsic_tools_mib/test_12bit_RAW_1frame.mib": "mib",
        "dioptas/lambda/testasapo1_1009_00002_m1_part00000.nxs": "hdf5",
        "imat_roi_analysis/example-ms.csv": "massspec-csv",
        "imat_roi_analysis/example-temp.csv": "temperature-log",
        "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits": "spice",
    }
    for rel, fmt in cases.items():
        assert sniff_format(shared_data / rel) == fmt, rel
    (femto,) = (shared_data / "drp_femtomax").glob("*.cbors.gz")
    assert sniff_format(femto) == "cbor-stream"
