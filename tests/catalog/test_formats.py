"""The format registry: one entry per format, and what open_dataset, sniffing and Intake derive."""

import inspect

import pytest
import xarray as xr

import beamcat
from beamcat.catalog import formats
from beamcat.catalog.formats import (
    FORMATS,
    REGISTRY,
    check_options,
    format_options,
    get_opener,
    sniff_format,
)
from beamcat.catalog.intake_readers import DATATYPES, READERS
from beamcat.errors import FormatError, OptionError

TIFF = "dioptas/CeO2_Pilatus1M.tif"

# the Intake class names catalogs on disk already name: kept
INTAKE_NAMES = {
    "tiff": "TIFFStack",
    "fits": "FITSStack",
    "spice": "SPICEL2",
    "mib": "MerlinMIB",
    "hdf5": "DetectorHDF5",
    "cbor-stream": "CBORStream",
    "massspec-csv": "MassSpecCSV",
    "temperature-log": "TemperatureLog",
    "imat-log": "IMATFrameLog",
    "zarr": "ZarrStore",
    "photon-list": "PhotonList",
    "eis": "HinodeEIS",
    "edx": "EDXSpectrumImage",
    "spice-l3": "SPICEL3",
}


def test_every_entry_gives_an_opener_a_datatype_and_a_reader():
    assert set(FORMATS) == set(INTAKE_NAMES) == set(DATATYPES) == set(READERS)
    for fmt in REGISTRY:
        opener = get_opener(fmt.name)
        first = next(iter(inspect.signature(opener).parameters))
        assert first == "source", fmt.name
        datatype = DATATYPES[fmt.name]
        assert datatype.__name__ == INTAKE_NAMES[fmt.name] and datatype.format == fmt.name
        assert datatype.__doc__ == fmt.doc
        assert READERS[fmt.name].__name__ == datatype.__name__ + "Reader"
        # importable by the name a catalog file records
        module = __import__(datatype.__module__, fromlist=["x"])
        assert getattr(module, datatype.__name__) is datatype


def test_options_come_from_the_openers_signature():
    assert format_options("tiff") == ("frame_log", "timezone", "times", "chunks")
    assert format_options("spice") == ("window",)
    assert format_options("eis") == ("window", "units")
    assert "path" in format_options("hdf5")


@pytest.mark.parametrize(
    ("format", "options", "match"),
    [
        ("tiff", {"frame_logg": "x.csv"}, r"no option 'frame_logg' \(did you mean 'frame_log'\?\)"),
        ("tiff", {"path": "entry/data"}, "format 'tiff' takes no option 'path'"),
        ("mib", {"frame_log": "x.csv"}, "its options are: scan_shape, flyback"),
    ],
)
def test_a_bad_option_names_itself_the_format_and_its_options(format, options, match):
    with pytest.raises(OptionError, match=match) as err:
        check_options(format, options, "run/frames.tif")
    assert "run/frames.tif" in str(err.value)


def test_open_dataset_refuses_a_bad_option_before_opening(shared_data):
    with pytest.raises(OptionError, match="its options are: frame_log, timezone, times, chunks"):
        beamcat.open_dataset(shared_data / TIFF, frame_logg="log.csv")
    with pytest.raises(OptionError, match="takes no option 'path'") as err:
        beamcat.open_dataset(shared_data / TIFF, format="tiff", path="x")
    assert TIFF.split("/")[1] in str(err.value)


def test_sniff_by_magic_when_the_name_tells_nothing(shared_data, tmp_path):
    cases = {
        TIFF: "tiff",
        "epsic_tools_mib/test_12bit_RAW_1frame.mib": "mib",
        "dioptas/lambda/testasapo1_1009_00002_m1_part00000.nxs": "hdf5",
        "eispac_eis/eis_20210306_064444.data.h5": "eis",
        "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits": "spice",
    }
    for i, (rel, fmt) in enumerate(cases.items()):
        renamed = tmp_path / f"file_{i}.bin"
        renamed.symlink_to(shared_data / rel)
        assert sniff_format(renamed) == fmt, rel


def test_a_suffix_predicate_falls_back_to_the_plain_format(shared_data, tmp_path):
    # named like an EIS data file, but a Lambda NeXus file: the EIS predicate says no
    odd = tmp_path / "lambda.data.h5"
    odd.symlink_to(shared_data / "dioptas/lambda/testasapo1_1009_00002_m1_part00000.nxs")
    assert sniff_format(odd) == "hdf5"


def test_unknown_text_and_zip_name_the_candidates(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(FormatError, match="text file of unknown kind; pass format="):
        sniff_format(text)
    empty_zip = tmp_path / "a.zip"
    empty_zip.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    with pytest.raises(FormatError, match="'mib'"):
        sniff_format(empty_zip)


def test_unknown_format_lists_the_registry():
    with pytest.raises(OptionError, match="unknown format 'jpeg'") as err:
        formats.get_opener("jpeg")
    assert "eis" in str(err.value) and "tiff" in str(err.value)


def test_catalog_entries_use_the_registry(shared_data, tmp_path):
    from beamcat.catalog.build import add_source, describe_entries
    from beamcat.catalog.catalogs import open_catalog

    catalog = tmp_path / "c.yaml"
    eis = shared_data / "eispac_eis/eis_20210306_064444.head.h5"
    add_source(catalog, "fe12", eis, options={"window": "Fe XII 192"})
    add_source(catalog, "bad", shared_data / TIFF, options={"frame_logg": "x.csv"})
    cat = open_catalog(catalog)
    rows = {r["name"]: r for r in describe_entries(cat)}
    assert rows["fe12"]["format"] == "eis" and rows["bad"]["format"] == "tiff"
    # the Intake reader calls open_dataset: the same Dataset as opening the file directly
    direct = beamcat.open_dataset(eis, window="Fe XII 192")
    xr.testing.assert_identical(cat["fe12"].read(), direct)
    with pytest.raises(OptionError, match="format 'tiff' takes no option 'frame_logg'"):
        cat["bad"].read()
