import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from astropy.io import fits

import beamcat
from beamcat.catalog import fits as beamcat_fits
from beamcat.catalog.formats import sniff_format
from beamcat.catalog.spice import open_spice, open_spice_tree, write_spice_l2
from beamcat.errors import BeamcatWarning, FormatError, OptionError

QL = "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits"
RASTER = "sunraster_spice/solo_L2_spice-n-ras-db_20200602T081733_V01_12583760-000.fits"
SIT = "sunraster_spice/solo_L2_spice-n-sit_20200620T235901_V01_16777431-000.fits"
TWO_WINDOWS = ["FLT02_Two Window_OB_ID_253_", "FLT02_Two Window_OB_ID_254_"]
HEADER_ONLY_WINDOWS = {
    RASTER: [
        "WINDOW0_70.51",
        "WINDOW1_76.65",
        "DUMBBELL_UPPER_WINDOW3_97.20",
        "DUMBBELL_LOWER_WINDOW3_97.20",
    ],
    SIT: TWO_WINDOWS,
}


def _linear_wcs_nm(header, pixels_0based):
    """The FITS linear axis formula, computed by hand: CRVAL3 + CDELT3 * (i + 1 - CRPIX3)."""
    return header["CRVAL3"] + header["CDELT3"] * (pixels_0based + 1 - header["CRPIX3"])


# --- the real file with data (solo-spice-ql test file) ---


@pytest.fixture(scope="module")
def ql_tree(shared_data):
    return open_spice_tree(shared_data / QL)


def test_ql_windows_and_shapes(ql_tree, shared_data):
    assert list(ql_tree.children) == TWO_WINDOWS  # VARIABLE_KEYWORDS (HDU 2) is skipped
    assert ql_tree.attrs["windows"] == TWO_WINDOWS
    assert ql_tree[TWO_WINDOWS[0]].radiance.shape == (1, 50, 1024, 1)
    assert ql_tree[TWO_WINDOWS[1]].radiance.shape == (1, 36, 1024, 1)
    ds = open_spice(shared_data / QL, window=1)
    assert ds.attrs["window"] == TWO_WINDOWS[1]
    assert ds.attrs["signal"] == "radiance" and ds.attrs["format"] == "spice"
    assert ds.radiance.attrs["units"] == "W/m2/sr/nm"
    assert ds.radiance.dims == ("time", "wavelength", "y", "x")


@pytest.mark.parametrize("index", [0, 1])
def test_ql_values_match_astropy(shared_data, index):
    ds = open_spice(shared_data / QL, window=index)
    truth = fits.getdata(shared_data / QL, index)
    values = ds.radiance.values
    assert values.dtype == np.float32
    # same bytes read two independent ways (astropy vs our memmap slices): exact
    np.testing.assert_array_equal(values, truth)


def test_ql_statistics_from_provenance(ql_tree):
    sw = ql_tree[TWO_WINDOWS[0]].radiance.values
    lw = ql_tree[TWO_WINDOWS[1]].radiance.values
    assert np.isnan(sw).sum() == 21067  # PROVENANCE.md
    # PROVENANCE.md quotes min/max/mean to 3 significant digits
    assert np.nanmin(sw) == pytest.approx(-34.8, abs=0.05)
    assert np.nanmax(sw) == pytest.approx(17.6, abs=0.05)
    assert np.nanmean(sw) == pytest.approx(1.02, abs=0.005)
    assert np.nanmin(lw) == pytest.approx(-535, abs=0.5)
    assert np.nanmax(lw) == pytest.approx(135.7, abs=0.05)
    assert np.nanmean(lw) == pytest.approx(10.3, abs=0.05)
    # and the pipeline's own DATAMIN/DATAMAX/DATAMEAN (6 significant digits in the header)
    attrs = ql_tree[TWO_WINDOWS[0]].attrs
    assert np.nanmin(sw) == pytest.approx(attrs["DATAMIN"], rel=1e-5)
    assert np.nanmax(sw) == pytest.approx(attrs["DATAMAX"], rel=1e-5)
    assert np.nanmean(sw, dtype=np.float64) == pytest.approx(attrs["DATAMEAN"], rel=1e-5)


def test_ql_nan_edges(ql_tree):
    sw = ql_tree[TWO_WINDOWS[0]].radiance.values[0, :, :, 0]  # (wavelength, y)
    rows_all_nan = np.isnan(sw).all(axis=0)
    assert np.flatnonzero(rows_all_nan).tolist() == list(range(45))  # 45 padded rows at y = 0
    assert np.flatnonzero(np.isnan(sw).all(axis=1)).tolist() == [48, 49]  # last 2 bins empty
    # the tilted spectrum leaves NaN wedges at the window's wavelength edges only
    assert np.isnan(sw[0]).sum() > 1000 and np.isnan(sw[20]).sum() == 45


def test_ql_wavelength_from_wcs(ql_tree):
    for name in TWO_WINDOWS:
        node = ql_tree[name]
        header = node.attrs
        n = node.sizes["wavelength"]
        expected_nm = _linear_wcs_nm(header, np.arange(n))
        assert node.wavelength.attrs["units"] == "Angstrom"
        # wcslib works in metres, then x1e10: double-precision round-off only
        np.testing.assert_allclose(node.wavelength.values, expected_nm * 10, rtol=1e-12)
        half = header["CDELT3"] / 2  # WAVEMIN/WAVEMAX are pixel edges: within half a pixel
        assert node.wavelength.values[0] / 10 == pytest.approx(header["WAVEMIN"] + half, abs=1e-6)
        assert node.wavelength.values[-1] / 10 == pytest.approx(header["WAVEMAX"] - half, abs=1e-6)


def test_ql_time_is_date_avg(ql_tree):
    node = ql_tree[TWO_WINDOWS[0]]
    # one 0.5 s exposure: the WCS time (DATEREF + CRVAL4) is the header's DATE-AVG midpoint
    assert node.time.values[0] == np.datetime64(node.attrs["DATE-AVG"])
    assert node.slit_time.shape == (1, 1)
    assert node.slit_time.values[0, 0] == node.time.values[0]


def test_ql_helioprojective_with_roll(ql_tree):
    node = ql_tree[TWO_WINDOWS[0]]
    h = node.attrs
    y = np.arange(node.sizes["y"])[:, None] + 1 - h["CRPIX2"]
    x = np.arange(node.sizes["x"])[None, :] + 1 - h["CRPIX1"]
    # linear (small-angle) approximation of the TAN projection, CDELTi * PCij * (pj - CRPIXj);
    # the field spans ~0.17 deg so the TAN terms are ~1e-5 relative: 0.05 arcsec is ample
    lon = h["CRVAL1"] + h["CDELT1"] * (h["PC1_1"] * x + h["PC1_2"] * y)
    lat = h["CRVAL2"] + h["CDELT2"] * (h["PC2_1"] * x + h["PC2_2"] * y)
    assert node.hpln.attrs["units"] == "arcsec"
    np.testing.assert_allclose(node.hpln.values, lon, atol=0.05)
    np.testing.assert_allclose(node.hplt.values, lat, atol=0.05)


def test_spice_open_is_lazy(shared_data, raise_if_dask_computes, monkeypatch):
    def no_read(self, key):
        raise AssertionError("pixel data read at open time")

    with monkeypatch.context() as m:
        m.setattr(beamcat_fits._HduSlicer, "__getitem__", no_read)
        with raise_if_dask_computes():
            ds = open_spice(shared_data / QL)
            tree = open_spice_tree(shared_data / QL)
    assert isinstance(ds.radiance.data, da.Array)
    assert isinstance(tree[TWO_WINDOWS[1]].radiance.data, da.Array)


def test_spice_chunking(shared_data):
    truth = fits.getdata(shared_data / QL, 0)
    ds = open_spice(shared_data / QL)
    for chunks in ({"y": 100}, {"wavelength": 7, "y": 333}):
        # any chunking reads the same float32 values
        np.testing.assert_array_equal(ds.radiance.chunk(chunks).values, truth)


# --- the real header-only files (sunraster test files) ---


@pytest.mark.parametrize("name", [RASTER, SIT])
def test_header_only_windows(shared_data, name):
    with pytest.warns(BeamcatWarning, match="header-only"):
        tree = open_spice_tree(shared_data / name)
    assert list(tree.children) == HEADER_ONLY_WINDOWS[name]
    assert "VARIABLE_KEYWORDS" not in tree.children
    for node in tree.children.values():
        h = node.attrs
        n = node.sizes["wavelength"]
        assert node.radiance.shape == (0, n, 0, 0)
        assert h["wavelength_source"].startswith("WAVEMIN/WAVEMAX")
        # WAVEMIN..WAVEMAX holds a whole number of CDELT3 bins (to 1e-6 of a pixel)
        assert n == pytest.approx((h["WAVEMAX"] - h["WAVEMIN"]) / h["CDELT3"], abs=1e-6)
        half = h["CDELT3"] / 2
        wl_nm = node.wavelength.values / 10
        assert wl_nm[0] == pytest.approx(h["WAVEMIN"] + half, abs=1e-9)
        assert wl_nm[-1] == pytest.approx(h["WAVEMAX"] - half, abs=1e-9)
        # on the WCS grid: pixel offset of the first bin, then CRVAL3 + CDELT3 * (i+1-CRPIX3)
        first = round((wl_nm[0] - h["CRVAL3"]) / h["CDELT3"] + h["CRPIX3"] - 1)
        np.testing.assert_allclose(wl_nm, _linear_wcs_nm(h, first + np.arange(n)), rtol=1e-12)


def test_header_only_wavelength_counts(shared_data):
    # (WAVEMAX - WAVEMIN) / CDELT3 by hand: 48 bins for the SW windows, 56 for the dumbbells;
    # the 2020 sit-and-stare file centres CRPIX3 (16.5) on 32 bins but WAVEMIN..MAX spans 48/40
    with pytest.warns(BeamcatWarning):
        raster = open_spice_tree(shared_data / RASTER)
        sit = open_spice_tree(shared_data / SIT)
    assert [node.sizes["wavelength"] for node in raster.children.values()] == [48, 48, 56, 56]
    assert [node.sizes["wavelength"] for node in sit.children.values()] == [48, 40]


def _with_data(header, shape):
    """A real window header given pixels: the WCS and times stay the real ones."""
    header = header.copy()
    for key in ("CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    return fits.PrimaryHDU(np.zeros(shape, np.float32), header=header)


@pytest.mark.parametrize(("name", "shape"), [(RASTER, (1, 48, 4, 30)), (SIT, (32, 48, 4, 1))])
def test_slit_times_match_variable_keywords(shared_data, tmp_path, name, shape):
    """Per-exposure WCS times against the acquisition times the pipeline logged (TIMAQUTC)."""
    with fits.open(shared_data / name) as hdul:
        hdu = _with_data(hdul[0].header, shape)
        started = hdul["VARIABLE_KEYWORDS"].data["TIMAQUTC"][0]
        exposure = hdul[0].header["XPOSURE"]
    path = tmp_path / "window.fits"
    hdu.writeto(path)
    ds = open_spice(path)
    nt, _, _, nx = shape
    logged = pd.to_datetime([str(t) for t in started.ravel()]).to_numpy().reshape(nt, nx)
    mid = logged + np.timedelta64(int(exposure * 5e8), "ns")
    # the WCS time axis is a linear fit to the logged starts (60.25 s steps in the raster):
    # within 50 ms; the raster runs from the last slit position (x = 29) to the first
    assert np.abs(ds.slit_time.values - mid).max() < np.timedelta64(50, "ms")
    if nx > 1:
        assert ds.slit_time.values[0, -1] < ds.slit_time.values[0, 0]
        # the mean over slit positions is the raster midpoint, DATE-AVG to within 0.2 s
        assert abs(ds.time.values[0] - np.datetime64(ds.attrs["DATE-AVG"])) < np.timedelta64(
            200, "ms"
        )


def test_sniff_real_spice(shared_data, tmp_path):
    for name in (QL, RASTER, SIT):
        assert sniff_format(shared_data / name) == "spice"
        # renamed, so only the INSTRUME card (past the first 2880 bytes) can tell
        renamed = tmp_path / "renamed.fits"
        renamed.write_bytes((shared_data / name).read_bytes())
        assert sniff_format(renamed) == "spice"


def test_open_dataset_sniffs_spice(shared_data):
    ds = beamcat.open_dataset(shared_data / QL, window=TWO_WINDOWS[1])
    assert ds.attrs["window"] == TWO_WINDOWS[1] and ds.sizes["wavelength"] == 36


# --- errors ---


def test_unknown_window(shared_data):
    with pytest.raises(OptionError, match="no window 'Ne VIII'"):
        open_spice(shared_data / QL, window="Ne VIII")
    with pytest.raises(OptionError, match="out of range"):
        open_spice(shared_data / QL, window=2)  # HDU 2 is the table, not a window


def test_not_fits_and_no_windows(tmp_path):
    fake = tmp_path / "solo_L2_spice-fake.fits"
    fake.write_text("just text")
    with pytest.raises(FormatError, match="not a FITS file: expected 'SIMPLE  =' at byte 0"):
        open_spice(fake)
    plain = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(plain)
    with pytest.raises(FormatError, match="no SPICE spectral window"):
        open_spice(plain)


@pytest.mark.filterwarnings("ignore:File may have been truncated")  # astropy's own notice
def test_truncated_window(tmp_path):
    path = write_spice_l2(tmp_path / "t.fits", [_window("A", np.ones((1, 5, 6, 7)))])
    with fits.open(path) as hdul:
        data_at = hdul[0].fileinfo()["datLoc"]
    path.write_bytes(path.read_bytes()[: data_at + 100])  # 100 of the 840 data bytes
    with pytest.raises(FormatError, match="truncated"):
        open_spice(path)


# --- write_spice_l2 ---


def _window(name, data, start=70.0, step=0.0095):
    return {"name": name, "data": data, "wavelength_start": start, "wavelength_step": step}


@pytest.fixture
def synthetic(tmp_path):
    rng = np.random.default_rng(5)
    sw = rng.normal(2.0, 1.0, (2, 12, 9, 5)).astype(np.float32)
    sw[:, 0] = np.nan  # a NaN edge bin, as in real windows
    lw = rng.normal(size=(2, 8, 4, 5)).astype(np.float32)
    path = write_spice_l2(
        tmp_path / "synthetic_raster.fits",
        [_window("Ne VIII 770", sw, 76.8, 0.0095), _window("C III/977", lw, 97.5, 0.0096)],
        date_obs="2022-04-02T11:15:37.500",
        exposure=10.0,
        pointing=(100.0, -50.0),
        crota=5.0,
        primary={"STUDY": "SYNTHETIC_RASTER", "SPIOBSID": 7},
    )
    return path, sw, lw


def test_write_round_trip(synthetic):
    path, sw, lw = synthetic
    tree = open_spice_tree(path)
    assert list(tree.children) == ["Ne VIII 770", "C III_977"]  # '/' is not allowed in a node
    ds = tree["Ne VIII 770"]
    np.testing.assert_array_equal(ds.radiance.values, sw)  # float32 in, float32 out, NaN kept
    np.testing.assert_array_equal(tree["C III_977"].radiance.values, lw)
    # start + i * step in nm, x10 Angstrom: double-precision round-off only
    np.testing.assert_allclose(
        ds.wavelength.values, (76.8 + 0.0095 * np.arange(12)) * 10, rtol=1e-12
    )
    np.testing.assert_allclose(
        tree["C III_977"].wavelength.values, (97.5 + 0.0096 * np.arange(8)) * 10, rtol=1e-12
    )
    # exposure (t, x) starts (t * 5 + x) * 10 s after DATE-OBS; its midpoint 5 s later
    start = np.datetime64("2022-04-02T11:15:37.500", "ns")
    offsets = (np.arange(2)[:, None] * 5 + np.arange(5)[None, :]) * 10 + 5
    expected = start + (offsets * 1e9).astype("timedelta64[ns]")
    np.testing.assert_array_equal(ds.slit_time.values, expected)
    np.testing.assert_array_equal(ds.time.values, expected.astype("int64").mean(1).astype("M8[ns]"))
    # the field centre is the pointing; 2 raster steps (8") to the left with a 5 deg roll
    # lands at -8 cos 5, -8 sin 5 (TAN projection: ~1e-6 arcsec off at this distance)
    assert ds.hpln.values[4, 2] == pytest.approx(100.0, abs=1e-6)
    assert ds.hplt.values[4, 2] == pytest.approx(-50.0, abs=1e-6)
    assert ds.hpln.values[4, 0] == pytest.approx(100 - 8 * np.cos(np.deg2rad(5)), abs=1e-3)
    assert ds.hplt.values[4, 0] == pytest.approx(-50 - 8 * np.sin(np.deg2rad(5)), abs=1e-3)


def test_write_header_like_real_l2(synthetic, shared_data):
    path, sw, _ = synthetic
    real = fits.getheader(shared_data / QL, 0)
    with fits.open(path) as hdul:
        names = [h.header["EXTNAME"] for h in hdul]
        assert names == ["Ne VIII 770", "C III/977", "VARIABLE_KEYWORDS"]
        header = hdul[0].header
        for key in ("CTYPE1", "CTYPE2", "CTYPE3", "CTYPE4", "CUNIT3", "LEVEL", "INSTRUME"):
            assert header[key] == real[key], key
        assert header["OBSRVTRY"] == "Solar Orbiter" and header["BUNIT"] == "W/m2/sr/nm"
        assert header["NWIN"] == 2 and header["STUDYTYP"] == "Raster"
        assert header["STUDY"] == "SYNTHETIC_RASTER" and hdul[1].header["SPIOBSID"] == 7
        assert header["WAVEMIN"] == pytest.approx(76.8 - 0.0095 / 2, abs=1e-12)
        assert header["WAVEMAX"] == pytest.approx(76.8 + 11.5 * 0.0095, abs=1e-12)
        assert header["DATE-OBS"] == "2022-04-02T11:15:37.500"
        assert hdul[0].data.dtype == np.dtype(">f4")
        times = hdul["VARIABLE_KEYWORDS"].data["TIMAQUTC"][0]
        assert times.shape == (2, 1, 1, 5)
        assert times[1, 0, 0, 0] == "2022-04-02T11:16:27.500"  # (1 * 5 + 0) * 10 s after start
    assert sniff_format(path) == "spice"


def test_write_errors(tmp_path):
    with pytest.raises(OptionError, match="missing key"):
        write_spice_l2(tmp_path / "a.fits", [{"name": "A", "data": np.ones((1, 2, 3, 4))}])
    with pytest.raises(OptionError, match="expected 4-D"):
        write_spice_l2(tmp_path / "a.fits", [_window("A", np.ones((2, 3, 4)))])
    with pytest.raises(OptionError, match="used twice"):
        write_spice_l2(tmp_path / "a.fits", [_window("A", np.ones((1, 2, 3, 4)))] * 2)
    with pytest.raises(OptionError, match="slit"):
        write_spice_l2(
            tmp_path / "a.fits",
            [_window("A", np.ones((1, 2, 3, 4))), _window("B", np.ones((1, 2, 3, 5)))],
        )
    assert not (tmp_path / "a.fits").exists()


def test_tree_nodes_are_window_datasets(synthetic):
    path, _, _ = synthetic
    tree = open_spice_tree(path)
    for index, name in enumerate(["Ne VIII 770", "C III/977"]):
        xr.testing.assert_identical(
            tree[name.replace("/", "_")].to_dataset(), open_spice(path, window=index)
        )


def test_wcsdvarr_extension_is_skipped(synthetic):
    path, sw, _ = synthetic
    with fits.open(path, mode="append") as hdul:
        hdul.append(fits.ImageHDU(np.zeros((3, 3), np.float32), name="WCSDVARR"))
    tree = open_spice_tree(path)
    assert list(tree.children) == ["Ne VIII 770", "C III_977"]
    np.testing.assert_array_equal(tree["Ne VIII 770"].radiance.values, sw)
