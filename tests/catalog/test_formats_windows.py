"""Spectral windows chosen by the names real files carry: exact, any case, or a unique part."""

import warnings

import numpy as np
import pytest

import beamcat
from beamcat.catalog import demo
from beamcat.catalog._windows import match_window
from beamcat.catalog.spice import open_spice
from beamcat.errors import BeamcatWarning, OptionError

QL = "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits"
RASTER = "sunraster_spice/solo_L2_spice-n-ras-db_20200602T081733_V01_12583760-000.fits"


@pytest.mark.parametrize(
    ("window", "index"),
    [
        ("FLT02_Two Window_OB_ID_253_", 0),  # exact EXTNAME
        ("flt02_two window_ob_id_253_", 0),  # any case
        ("FLT02_Two  Window_OB_ID_254", 1),  # a prefix, repeated spaces folded
        ("ID_254", 1),  # a unique part
        (-1, 1),
        (np.int64(0), 0),
    ],
)
def test_real_spice_names(shared_data, window, index):
    ds = open_spice(shared_data / QL, window=window)
    assert ds.attrs["window"] == f"FLT02_Two Window_OB_ID_25{3 + index}_"


def test_ambiguous_or_unknown_names_list_the_windows(shared_data):
    with pytest.raises(OptionError, match="matches 2 windows") as err:
        open_spice(shared_data / QL, window="FLT02")
    assert "0: 'FLT02_Two Window_OB_ID_253_'" in str(err.value) and QL[-20:] in str(err.value)
    with pytest.raises(OptionError, match="no window 'Ne VIII 770 - SI'"):
        open_spice(shared_data / QL, window="Ne VIII 770 - SI")
    with pytest.raises(OptionError, match="expected a window index or name"):
        open_spice(shared_data / QL, window=1.5)


def test_header_only_raster_names(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BeamcatWarning)  # header-only windows say so
        assert open_spice(shared_data / RASTER, window="window1").attrs["window"] == (
            "WINDOW1_76.65"
        )
        upper = open_spice(shared_data / RASTER, window="dumbbell_upper")
        assert upper.attrs["window"] == "DUMBBELL_UPPER_WINDOW3_97.20"
    with pytest.raises(OptionError, match="matches 2 windows"):
        open_spice(shared_data / RASTER, window="DUMBBELL")


def test_readme_example_works_on_the_demo_file(tmp_path):
    (entry, *_) = demo.spice.write(tmp_path / "spice", np.random.default_rng(0))
    # README: beamcat.open_dataset("solo_L2_spice-n-ras_....fits", window="Ne VIII 770")
    ds = beamcat.open_dataset(entry.source, window="Ne VIII 770")
    assert ds.attrs["window"] == "Ne VIII 770" and ds.attrs["format"] == "spice"
    assert beamcat.open_dataset(entry.source, window="o vi").attrs["window"] == "O VI 1032"


def test_match_window_exact_before_part():
    names = ["Fe XII 192", "Fe XII 192.410"]
    assert match_window("Fe XII 192", names, where="f") == 0  # exact wins over a prefix
    assert match_window("192.41", names, where="f") == 1
    with pytest.raises(OptionError, match="out of range"):
        match_window(2, names, where="f")
    with pytest.raises(OptionError, match="expected a window index or name"):
        match_window(True, names, where="f")
