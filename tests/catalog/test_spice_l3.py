"""SAFFRON-layout L3 files: written from a line-fit result, read back into the same layout.

The result is built by hand in fit_lines' layout (the contract of issue #11), its
L2 header from a synthetic file written by write_spice_l2 and read by open_spice.
Values round trip through float32 FITS images: compared exactly against the
float32 of what was written.
"""

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import beamcat
from beamcat.catalog.formats import sniff_format
from beamcat.catalog.spice import open_spice, write_spice_l2
from beamcat.catalog.spice_l3 import chianti_ion, open_l3, write_l3
from beamcat.errors import FormatError, OptionError

LINES = {"ne_viii_1": 770.42, "o_iii_1": 702.70}
FLAGS = "converged max_iterations too_few_points singular at_bound no_data"
NAME = "solo_L2_spice-n-ras_20240101T000000_V01_123456789-000.fits"


@pytest.fixture
def l2(tmp_path):
    data = np.ones((1, 20, 6, 4), np.float32)
    window = {
        "name": "Ne VIII 770",
        "data": data,
        "wavelength_start": 76.9,
        "wavelength_step": 0.0095,
    }
    path = write_spice_l2(tmp_path / NAME, [window], pointing=(120.0, -300.0), crota=10.0,
                          primary={"SPIOBSID": 123456789})  # fmt: skip
    return open_spice(path)


def _result(with_time=True, chunked=False):
    rng = np.random.default_rng(3)
    dims = ("line", "time", "y", "x") if with_time else ("line", "y", "x")
    shape = (2, 1, 6, 4) if with_time else (2, 6, 4)

    def field(scale, units):
        return (dims, rng.normal(1, 0.1, shape) * scale, {"units": units})

    names = {"intensity": ("W/m2/sr/nm", 10.0), "center": ("Angstrom", 770.0),
             "width": ("Angstrom", 0.3), "velocity": ("km/s", 5.0),
             "radiance": ("W/m2/sr", 1.0)}  # fmt: skip
    variables = {}
    for name, (units, scale) in names.items():
        variables[name] = field(scale, units)
        variables[f"{name}_error"] = field(scale / 50, units)
    spatial = dims[1:]
    status = rng.integers(0, 6, shape[1:]).astype(np.int8)
    variables["status"] = (spatial, status, {"flag_values": np.arange(6, dtype=np.int8),
                                             "flag_meanings": FLAGS})  # fmt: skip
    variables["chi2"] = (spatial, rng.uniform(10, 60, shape[1:]))
    variables["reduced_chi2"] = (spatial, rng.uniform(0.5, 2, shape[1:]))
    coords = {"line": list(LINES), "rest_wavelength": ("line", list(LINES.values()))}
    result = xr.Dataset(variables, coords=coords)
    return result.chunk({"y": 3}) if chunked else result


def test_saffron_layout_and_keywords(tmp_path, l2):
    files = write_l3(_result(), tmp_path / "l3", source_header=l2.attrs)
    # SAFFRON: L2 name with L2 -> L2.5, then "_" + LINE_ID (f"{wvl:08.2f}-{ion}": 8 characters)
    stem = NAME.replace("L2", "L2.5")[:-5]
    assert [f.name for f in files] == [f"{stem}_00770.42-ne_8.fits", f"{stem}_00702.70-o_3.fits"]
    with fits.open(files[0]) as hdul:
        measured = [h.header["MEASRMNT"] for h in hdul]
        # SAFFRON's six in its order, then beamcat's
        assert measured[:6] == ["int", "wav", "wid", "int_err", "wav_err", "wid_err"]
        assert measured[6:] == ["vel", "vel_err", "rad", "rad_err", "chi2", "red_chi2", "status"]
        head = hdul[0].header
        assert head["LINE_ID"] == "00770.42-ne_8" and head["ION"] == "ne_8"
        assert head["WAVELENGTH"] == 770.42 and head["WAVEUNIT"] == "Angstrom"
        assert head["OBSERVATORY"] == "Solar Orbiter" and head["INSTRUMENT"] == "SPICE"
        assert (head["BTYPE"], head["BUNIT"]) == ("Spectral Radiance", "W/m2/sr/nm")
        wid, wav = hdul["width"].header, hdul["wavelength"].header
        assert (wid["BTYPE"], wid["BUNIT"], wav["BTYPE"]) == (
            "Line Width",
            "Angstrom",
            "Wavelength",
        )
        assert head["DATE-OBS"] == l2.attrs["DATE-OBS"] and head["SPIOBSID"] == 123456789
        assert head["L2PARENT"] == NAME and head["LEVEL"] == "L2.5"
        assert head["L2WINDOW"] == "Ne VIII 770" and head["FILENAME"] == files[0].name
        # SAFFRON 0.4's extension names
        assert [h.name for h in hdul][1:6] == ["WAVELENGTH", "WIDTH", "INTENSITY_ERR",
                                               "WAVELENGTH_ERR", "WIDTH_ERR"]  # fmt: skip
        # the map WCS: L2's spatial and time axes, the spectral one dropped (as SAFFRON)
        assert [head[f"CTYPE{i}"] for i in (1, 2, 3)] == ["HPLN-TAN", "HPLT-TAN", "UTC"]
        assert hdul[0].data.shape == (1, 6, 4) and hdul["status"].header["BITPIX"] == 16


def test_round_trip_through_open_dataset(tmp_path, l2, raise_if_dask_computes):
    result = _result(chunked=True)
    with raise_if_dask_computes(1):  # a lazy result is computed once for all its maps
        files = write_l3(result, tmp_path / "l3", source_header=l2.attrs)
    with raise_if_dask_computes():
        back = open_l3(tmp_path / "l3")
        one = beamcat.open_dataset(files[1])  # registered format, found by sniffing
    assert sniff_format(files[0]) == "spice-l3" and one.attrs["format"] == "spice-l3"
    assert list(back.line.values) == ["o_iii_1", "ne_viii_1"]  # file order: 00702.70 < 00770.42
    back = back.sel(line=list(LINES))
    assert back.intensity.dims == ("line", "time", "y", "x")
    np.testing.assert_array_equal(back.rest_wavelength, list(LINES.values()))
    assert list(back.ion.values) == ["ne_8", "o_3"]
    for name in ["intensity", "center", "width", "velocity", "radiance", "chi2", "reduced_chi2"]:
        for var in (name, f"{name}_error") if name not in ("chi2", "reduced_chi2") else (name,):
            expected = result[var].astype(np.float32)
            if "line" not in expected.dims:
                expected = expected.expand_dims(line=list(LINES))
            # float32 on disk: the float32 of the value written, exactly
            np.testing.assert_array_equal(back[var].values, expected.transpose(*back[var].dims))
            assert back[var].attrs["units"] == result[var].attrs.get("units", "")
    np.testing.assert_array_equal(back.status.isel(line=0), result.status)
    assert back.status.attrs["flag_meanings"] == FLAGS
    np.testing.assert_array_equal(back.status.attrs["flag_values"], np.arange(6))
    assert back.attrs["SPIOBSID"] == 123456789 and back.attrs["DATE-OBS"] == l2.attrs["DATE-OBS"]
    # helioprojective coordinates from the carried WCS equal the L2 reader's (rolled by 10 deg)
    np.testing.assert_allclose(back.hpln, l2.hpln, atol=1e-9)
    np.testing.assert_allclose(back.hplt, l2.hplt, atol=1e-9)
    np.testing.assert_array_equal(
        one.intensity.isel(line=0), result.intensity.isel(line=1).astype(np.float32)
    )


def test_maps_without_time_or_l2_header(tmp_path):
    result = _result(with_time=False)
    files = write_l3(result, tmp_path)  # no L2 header: beamcat's name, no WCS
    assert files[0].name == "beamcat_L3_00770.42-ne_8.fits"
    back = open_l3(files)
    assert back.intensity.dims == ("line", "y", "x") and "hpln" not in back.coords
    # an EIS fit: open_eis's lower-case level-0 keywords name the observatory and date
    eis = {"telescop": "Hinode", "instrume": "EIS", "date_obs": "2021-03-06T06:44:44.000"}
    head = fits.getheader(write_l3(result, tmp_path / "eis", source_header=eis)[0])
    assert (head["OBSERVATORY"], head["INSTRUMENT"]) == ("Hinode", "EIS")
    assert head["DATE-OBS"] == eis["date_obs"]
    np.testing.assert_array_equal(
        back.width.sel(line="o_iii_1"), result.width.isel(line=1).astype(np.float32)
    )


def test_ion_names_as_chianti_writes_them():
    assert chianti_ion("o_iii_1") == "o_3" and chianti_ion("mg_ix_2") == "mg_9"
    assert chianti_ion("Fe XII 192.394") == "fe_12" and chianti_ion("si_xiv") == "si_14"
    assert chianti_ion("ghost") == chianti_ion("no_line") == "unknown"


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(OptionError, match="'line' dim"):
        write_l3(_result().isel(line=0), tmp_path)
    with pytest.raises(OptionError, match="lacks \\['width_error'\\]"):
        write_l3(_result().drop_vars("width_error"), tmp_path)
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((3, 3), np.float32)).writeto(plain)
    with pytest.raises(FormatError, match="plain.fits: HDUs with MEASRMNT"):
        open_l3(plain)
    files = write_l3(_result(), tmp_path / "a")
    small = write_l3(_result(with_time=False).isel(x=slice(0, 2)), tmp_path / "b")
    with pytest.raises(FormatError, match="different map shapes"):
        open_l3([files[0], small[0]])


def test_saffron_04_fit_model_table_is_not_a_map(tmp_path):
    # SAFFRON 0.4 appends a FIT_MODEL binary table after its six maps: read past it
    files = write_l3(_result(with_time=False), tmp_path)
    with fits.open(files[0], mode="append") as hdul:
        column = fits.Column(name="MODEL", format="10A", array=np.array(["gaussian"]))
        hdul.append(fits.BinTableHDU.from_columns([column], name="FIT_MODEL"))
    back = open_l3(files[0])
    assert "MODEL" not in back and back.intensity.dims == ("line", "y", "x")
    # and its background file beside the line files is left out of a folder
    background = fits.Header({"MEASRMNT": "bg", "BTYPE": "Spectral Radiance"})
    fits.PrimaryHDU(np.zeros((6, 4), np.float32), header=background).writeto(tmp_path / "bg.fits")
    assert open_l3(tmp_path).sizes["line"] == 2
    with pytest.raises(FormatError, match="only SAFFRON background files"):
        open_l3(tmp_path / "bg.fits")
