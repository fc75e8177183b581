"""Hinode EIS level-1 HDF5 (eispac's test observation) as labelled (wavelength, y, x) windows.

Values are checked against the raw arrays of the .data.h5/.head.h5 pair read
with h5py here, following eispac's read_cube (counts x radcal, counts <= -100
masked). The uncertainties are checked against eispac itself when it is
installed (the ``bench`` extra: it pulls in sunpy, ndcube, reproject and ~40
more packages), else against the formula of its read_cube done here in NumPy.
"""

import contextlib
import io
import warnings

import h5py
import numpy as np
import pytest

import beamcat
from beamcat.catalog.eis import eis_windows, open_eis
from beamcat.catalog.formats import sniff_format
from beamcat.errors import OptionError, SourceNotFoundError

DATA = "eispac_eis/eis_20210306_064444.data.h5"
HEAD = "eispac_eis/eis_20210306_064444.head.h5"
LINES = [
    "Ca XV 181.900",
    "Fe XII 186.750",
    "Fe XII 192.410",
    "Ar XIV 194.200",
    "Ca XV 201.000",
    "Fe XVII 254.950",
    "S XIII 256.950",
    "Fe XXIII 263.300",
    "Fe XIV 270.510",
]


@pytest.fixture(scope="module")
def raw(shared_data):
    """The window-2 arrays straight from the files: (y, x, wavelength) counts and its tables."""
    with h5py.File(shared_data / DATA, "r") as d, h5py.File(shared_data / HEAD, "r") as h:
        return {
            "counts": d["level1/win02"][()],
            "wave": h["wavelength/win02"][()],
            "radcal": h["radcal/win02_pre"][()],
            "wave_corr": h["wavelength/wave_corr"][()],
            "solar_x": h["pointing/solar_x"][()],
            "solar_y": h["pointing/solar_y"][()],
            "duration": h["exposure_times/duration"][()],
            "date_obs": h["times/date_obs"][()],
        }


def test_sniffed_from_either_file(shared_data):
    assert sniff_format(shared_data / DATA) == sniff_format(shared_data / HEAD) == "eis"
    assert eis_windows(shared_data / HEAD) == LINES


def test_window_cube_against_the_raw_arrays(shared_data, raw, raise_if_dask_computes):
    with raise_if_dask_computes():
        ds = beamcat.open_dataset(shared_data / DATA, window=2)
    assert ds.intensity.dims == ("wavelength", "y", "x")
    assert ds.sizes == {"wavelength": 24, "y": 120, "x": 25}
    assert ds.attrs["signal"] == "intensity" and ds.attrs["format"] == "eis"
    assert ds.attrs["window"] == "Fe XII 192.410" and ds.attrs["telescop"] == "Hinode"
    assert ds.intensity.attrs["units"] == "erg / (cm2 s sr)"
    # eispac's read_cube: data * radcal (float32 arrays), mask counts <= -100
    counts = raw["counts"].transpose(2, 0, 1)
    expected = counts * raw["radcal"][:, None, None]
    expected[counts <= -100] = np.nan
    got = ds.intensity.values
    assert got.dtype == np.float32
    # same float32 product of the same float32 operands: bit for bit, NaN where flagged
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got).sum() == (raw["counts"] == -100).sum() == 728
    # tables copied, not recomputed: exact
    np.testing.assert_array_equal(ds.wavelength, raw["wave"])
    np.testing.assert_array_equal(ds.wave_corr, raw["wave_corr"])
    np.testing.assert_array_equal(ds.solar_x, raw["solar_x"])
    np.testing.assert_array_equal(ds.solar_y, raw["solar_y"])
    np.testing.assert_array_equal(ds.exposure, raw["duration"])
    assert ds.time.values[0] == np.datetime64(raw["date_obs"][0].decode())
    assert ds.wavelength.attrs["units"] == "Angstrom" and ds.solar_x.attrs["units"] == "arcsec"
    # eispac's corrected wavelength of pixel (y=7, x=3) is wave - wave_corr[7, 3]
    corrected = ds.wavelength - ds.wave_corr.isel(y=7, x=3)
    np.testing.assert_array_equal(corrected, raw["wave"] - raw["wave_corr"][7, 3])


def test_counts_kept_on_request(shared_data, raw):
    ds = open_eis(shared_data / HEAD, window="win02", units="counts")
    assert ds.intensity.attrs["units"] == "counts"
    expected = raw["counts"].transpose(2, 0, 1).copy()
    expected[expected <= -100] = np.nan
    np.testing.assert_array_equal(ds.intensity.values, expected)  # no arithmetic: exact


@pytest.mark.parametrize(
    "window", [2, -7, "Fe XII 192.410", "fe xii 192", "FE XII 192.41", "192.4", 192.4, "win02"]
)
def test_window_by_index_name_part_or_wavelength(shared_data, window):
    ds = open_eis(shared_data / DATA, window=window)  # "192.4" is part of the name; 192.4 inside
    assert ds.attrs["window"] == "Fe XII 192.410" and ds.attrs["window_index"] == 2


def test_bad_windows_list_the_windows(shared_data):
    with pytest.raises(OptionError, match="matches 2 windows") as err:
        open_eis(shared_data / DATA, window="Fe XII")
    assert "Fe XIV 270.510" in str(err.value) and DATA.split("/")[1][:8] in str(err.value)
    with pytest.raises(OptionError, match="no window 'Ne VIII'"):
        open_eis(shared_data / DATA, window="Ne VIII")
    with pytest.raises(OptionError, match="out of range"):
        open_eis(shared_data / DATA, window=9)
    with pytest.raises(OptionError, match="lies in 0 windows"):
        open_eis(shared_data / DATA, window=500.0)
    with pytest.raises(OptionError, match="units='W'"):
        open_eis(shared_data / DATA, units="W")


def test_missing_partner_names_it(shared_data, tmp_path):
    lone = tmp_path / "eis_x.data.h5"
    lone.symlink_to(shared_data / DATA)
    with pytest.raises(SourceNotFoundError, match=r"eis_x\.head\.h5"):
        open_eis(lone)


def _eispac_sigma(raw):
    """eispac's read_cube uncertainty in NumPy: sqrt(|counts| + read_noise^2) x radcal."""
    corrected = raw["wave"][None, None, :] - raw["wave_corr"][:, :, None]
    read_noise = 14.427 / ((12398.5 / corrected) / 3.65)
    sigma = np.sqrt(np.abs(raw["counts"]) + read_noise**2) * raw["radcal"]
    sigma[raw["counts"] <= -100] = np.nan
    return sigma.transpose(2, 0, 1)


def test_sigma_as_eispac_computes_it(shared_data, raw, raise_if_dask_computes):
    with raise_if_dask_computes():
        ds = open_eis(shared_data / DATA, window=2)
    assert ds.sigma.dims == ("wavelength", "y", "x") and ds.sigma.dtype == np.float32
    assert ds.sigma.attrs["units"] == "erg / (cm2 s sr)"
    got = ds.sigma.values
    # eispac works in float64, beamcat keeps float32: agreement to float32 rounding
    np.testing.assert_allclose(got, _eispac_sigma(raw), rtol=2e-6)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ds.intensity.values))
    counts = open_eis(shared_data / DATA, window=2, units="counts")
    # uncalibrated: the same noise in counts (radcal divided out)
    ratio = (ds.sigma / counts.sigma).values
    np.testing.assert_allclose(
        ratio,
        np.broadcast_to(raw["radcal"][:, None, None], ratio.shape)
        * np.where(np.isnan(ratio), np.nan, 1),
        rtol=2e-6,
    )


def test_sigma_equals_eispac_read_cube(shared_data):
    eispac = pytest.importorskip("eispac")
    cube = eispac.read_cube(str(shared_data / DATA), window=2)
    ds = open_eis(shared_data / DATA, window=2)
    expected = cube.uncertainty.array.transpose(2, 0, 1)
    valid = ~cube.mask.transpose(2, 0, 1)  # eispac writes -100 x radcal where masked
    # the same formula on the same inputs, eispac in float64, beamcat in float32
    np.testing.assert_allclose(ds.sigma.values[valid], expected[valid], rtol=2e-6)
    assert np.isnan(ds.sigma.values[~valid]).all()
    np.testing.assert_allclose(
        ds.intensity.values[valid], cube.data.transpose(2, 0, 1)[valid], rtol=2e-6
    )


def test_fe_xii_fit_agrees_with_eispac(shared_data):
    """The issue's real-data check: beamcat's fit of Fe XII 192.394 against eispac's own.

    Same data, same uncertainties, eispac's template (one Gaussian + constant,
    its window and limits); eispac fits each pixel on its corrected wavelengths,
    beamcat on the table's and subtracts wave_corr from the centre (a shift of
    the axis). Both minimise the same chi2, so the parameters agree to a small
    fraction of their errors; 200 pixels keep eispac's mpfit under a second.
    """
    eispac = pytest.importorskip("eispac")
    from beamcat.analyses.linefit import fit_lines

    rest = 192.394
    path = shared_data / DATA
    template = eispac.read_template(
        eispac.data.get_fit_template_filepath("fe_12_192_394.1c.template.h5")
    )
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = eispac.read_cube(str(path), window=rest)[40:60, 5:15]
        reference = eispac.fit_spectra(cube, template, ncpu=1).fit
    centre, width = (p["limits"] for p in template.parinfo[1:3])
    info = template.template
    ds = open_eis(path, window=rest).isel(y=slice(40, 60), x=slice(5, 15))
    result = fit_lines(
        ds.intensity,
        ds.sigma,
        lines={"fe_12_192_394": rest},
        bounds={"center": tuple(centre - rest), "width": tuple(width)},
        wavelength_range=(info["wmin"], info["wmax"]),
    ).isel(line=0)
    ours = {
        "intensity": result.intensity.values,
        "center": (result.center - ds.wave_corr).values,
        "width": result.width.values,
    }
    params, errors = reference["params"], reference["perror"]
    good = (result.status.values == 0) & (params[..., 0] > 10 * errors[..., 0])
    assert good.sum() > 150  # well-fitted: converged, peak S/N > 10
    for k, name in enumerate(["intensity", "center", "width"]):
        diff = np.abs(ours[name] - params[..., k])[good] / errors[..., k][good]
        # within the errors everywhere, and typically far inside them
        assert diff.max() < 1 and np.median(diff) < 0.05, name
