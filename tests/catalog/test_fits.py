import gzip
import json

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

import beamcat
from beamcat.catalog import fits as beamcat_fits
from beamcat.catalog.fits import open_fits, scaled_dtype
from beamcat.errors import FormatError, OptionError, SourceNotFoundError


def _write(path, data, **keywords):
    """Write `data` with astropy; with uint16 data astropy writes BITPIX 16 + BZERO 32768."""
    header = fits.Header()
    for key, value in keywords.items():
        header[key.replace("_", "-")] = value
    header["COMMENT"] = "a comment that attrs leave out"
    header["HISTORY"] = "and a history line"
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.fixture
def frames_folder(tmp_path):
    """Four 2-D uint16 frames (BZERO=32768 convention), one per file, like an IMAT run."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 65536, (4, 6, 9), dtype=np.uint16)
    truth[0, 0, :3] = [0, 32767, 65535]  # both ends of the unsigned range
    folder = tmp_path / "run"
    folder.mkdir()
    for i, frame in enumerate(truth):
        _write(
            folder / f"frame_{i + 1}.fits",  # natural order: frame_2 before frame_10
            frame,
            DATE_OBS=f"2024-03-05T10:00:0{i}.5",
            EXPTIME=0.5,
            INSTRUME="IMAT",
        )
    return folder, truth


def test_folder_of_frames(frames_folder):
    folder, truth = frames_folder
    assert fits.getheader(folder / "frame_1.fits")["BZERO"] == 32768
    ds = open_fits(folder)
    assert ds.counts.dims == ("frame", "y", "x")
    assert ds.counts.dtype == np.uint16  # the unsigned convention, as astropy reads it
    np.testing.assert_array_equal(ds.counts.values, truth)  # integers: exact
    expected = np.array([f"2024-03-05T10:00:0{i}.5" for i in range(4)], dtype="datetime64[ns]")
    np.testing.assert_array_equal(ds.time.values, expected)
    np.testing.assert_array_equal(ds.exposure.values, [0.5] * 4)
    assert ds.exposure.attrs["units"] == "s"
    assert ds.attrs["signal"] == "counts" and ds.attrs["format"] == "fits"
    assert ds.counts.attrs["units"] == "counts"
    assert ds.attrs["INSTRUME"] == "IMAT"
    assert "COMMENT" not in ds.attrs and "HISTORY" not in ds.attrs
    json.dumps(ds.attrs)  # str/int/float/bool only


def test_glob_and_list_give_the_same_stack(frames_folder):
    folder, truth = frames_folder
    by_glob = open_fits(str(folder / "frame_*.fits"))
    by_list = open_fits([folder / "frame_3.fits", folder / "frame_1.fits"])
    np.testing.assert_array_equal(by_glob.counts.values, truth)
    np.testing.assert_array_equal(by_list.counts.values, truth[[2, 0]])  # list order is kept


def test_cube_with_scaling(tmp_path):
    """A 3-D int16 cube with BSCALE/BZERO: frames are planes, values are scaled to float32."""
    rng = np.random.default_rng(2)
    raw = rng.integers(-3000, 3000, (5, 7, 4), dtype=np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 100.0
    hdu.header["DATE-OBS"] = "2024-03-05T10:00:00"
    hdu.writeto(tmp_path / "cube.fits")
    ds = open_fits(tmp_path / "cube.fits")
    assert ds.sizes == {"frame": 5, "y": 7, "x": 4}
    astropy_data = fits.getdata(tmp_path / "cube.fits")
    assert ds.counts.dtype == astropy_data.dtype == np.float32
    # x * 0.5 + 100 is exact in float32 for |x| < 3000
    np.testing.assert_array_equal(ds.counts.values, raw.astype(np.float32) * 0.5 + 100)
    np.testing.assert_array_equal(ds.counts.values, astropy_data)
    # a cube has one DATE-OBS: every plane gets it
    assert (ds.time.values == np.datetime64("2024-03-05T10:00:00")).all()
    assert "exposure" not in ds.coords


def test_cube_and_frames_together(tmp_path):
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(3, 5, 6)).astype(np.float32)
    cube[1, 2, 3] = np.nan
    frame = rng.normal(size=(5, 6)).astype(np.float32)
    _write(tmp_path / "a.fits", cube)
    _write(tmp_path / "b.fits", frame)
    ds = open_fits(tmp_path)
    np.testing.assert_array_equal(ds.counts.values, np.concatenate([cube, frame[None]]))
    assert "time" not in ds.coords  # no DATE-OBS/DATE anywhere


@pytest.mark.parametrize(
    ("data", "bscale", "bzero"),
    [
        (np.arange(-5, 5, dtype=np.int16), 1, 0),
        (np.arange(0, 10, dtype=np.uint16), 1, 32768),
        (np.arange(0, 10, dtype=np.uint32), 1, 2**31),
        (np.arange(-5, 5, dtype=np.int8), 1, -128),
        (np.arange(0, 10, dtype=np.uint8), 1, 0),
        (np.arange(0, 10, dtype=np.int16), 2.0, 1.0),
        (np.arange(0, 10, dtype=np.int32), 0.1, 0.0),
        (np.arange(0, 10, dtype=np.float64), 1, 0),
    ],
)
def test_dtypes_and_values_match_astropy(tmp_path, data, bscale, bzero):
    path = tmp_path / "img.fits"
    hdu = fits.PrimaryHDU(data.reshape(2, 5))
    if (bscale, bzero) != (1, 0) and data.dtype.kind == "i" and data.dtype.itemsize > 1:
        hdu.header["BSCALE"], hdu.header["BZERO"] = bscale, bzero
    hdu.writeto(path)
    header = fits.getheader(path)
    expected = fits.getdata(path)
    native = expected.dtype.newbyteorder("=")  # astropy keeps FITS big-endian, we go native
    assert scaled_dtype(header["BITPIX"], header.get("BSCALE", 1), header.get("BZERO", 0)) == native
    ds = open_fits(path)
    assert ds.counts.dtype == native
    # the same integers, or the same float arithmetic (x * BSCALE + BZERO) as astropy
    np.testing.assert_allclose(ds.counts.values[0], expected, rtol=1e-7)


def test_blank_becomes_nan_when_scaled(tmp_path):
    raw = np.array([[-32768, 1], [2, 3]], np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header.update(BSCALE=2.0, BZERO=0.0, BLANK=-32768)
    hdu.writeto(tmp_path / "blank.fits")
    values = open_fits(tmp_path / "blank.fits").counts.values[0]
    np.testing.assert_array_equal(values, [[np.nan, 2], [4, 6]])  # as astropy reads it:
    np.testing.assert_array_equal(values, fits.getdata(tmp_path / "blank.fits"))


def test_image_in_an_extension_and_hdu_option(tmp_path):
    data = np.arange(20, dtype=np.float32).reshape(4, 5)
    primary = fits.PrimaryHDU()
    primary.header["DATE-OBS"] = "2024-01-02T03:04:05"
    fits.HDUList(
        [primary, fits.ImageHDU(data, name="SCI"), fits.ImageHDU(data * 2, name="VAR")]
    ).writeto(tmp_path / "ext.fits")
    first = open_fits(tmp_path / "ext.fits")  # the first HDU with an image
    np.testing.assert_array_equal(first.counts.values[0], data)
    assert first.time.values[0] == np.datetime64("2024-01-02T03:04:05")  # from the primary
    by_name = open_fits(tmp_path / "ext.fits", hdu="VAR")
    np.testing.assert_array_equal(by_name.counts.values[0], data * 2)
    with pytest.raises(OptionError, match="no HDU 7"):
        open_fits(tmp_path / "ext.fits", hdu=7)


def test_compressed_and_gzip_files(tmp_path):
    data = np.random.default_rng(4).integers(0, 4000, (2, 8, 8), dtype=np.int16)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data)]).writeto(tmp_path / "tiles.fits")
    _write(tmp_path / "plain.fits", data)
    (tmp_path / "zipped.fits.gz").write_bytes(gzip.compress((tmp_path / "plain.fits").read_bytes()))
    for name in ("tiles.fits", "zipped.fits.gz"):
        # lossless Rice tiles / gzip: exact integers
        np.testing.assert_array_equal(open_fits(tmp_path / name).counts.values, data)


def test_time_zone_of_naive_dates(tmp_path):
    _write(tmp_path / "local.fits", np.zeros((2, 2), np.uint16), DATE_OBS="2024-07-01T12:00:00")
    _write(
        tmp_path / "split.fits",
        np.zeros((2, 2), np.uint16),
        DATE_OBS="2024-07-01",
        TIME_OBS="11:30:00",
    )
    ds = open_fits(tmp_path / "local.fits", timezone="Europe/London")
    assert ds.time.values[0] == np.datetime64("2024-07-01T11:00:00")  # BST is UTC+1 in July
    assert open_fits(tmp_path / "split.fits").time.values[0] == np.datetime64("2024-07-01T11:30:00")


def test_not_a_fits_file(tmp_path):
    (tmp_path / "fake.fits").write_bytes(b"II*\x00 a TIFF in disguise")
    with pytest.raises(
        FormatError, match=r"fake\.fits: not a FITS file: expected 'SIMPLE  =' at byte 0"
    ):
        open_fits(tmp_path / "fake.fits")


def test_shape_and_dtype_mismatch(tmp_path):
    _write(tmp_path / "f1.fits", np.zeros((4, 5), np.uint16))
    _write(tmp_path / "f2.fits", np.zeros((4, 6), np.uint16))
    with pytest.raises(FormatError, match=r"f2\.fits: image is \(4, 6\) uint16, expected \(4, 5\)"):
        open_fits(tmp_path)
    (tmp_path / "f2.fits").unlink()
    _write(tmp_path / "f3.fits", np.zeros((4, 5), np.float32))
    with pytest.raises(FormatError, match=r"f3\.fits: image is \(4, 5\) float32"):
        open_fits(tmp_path)


@pytest.mark.filterwarnings("ignore:File may have been truncated")  # astropy's own notice
def test_truncated_and_bad_files(tmp_path):
    path = _write(tmp_path / "t.fits", np.ones((100, 100), np.float32))
    path.write_bytes(path.read_bytes()[:-20000])
    with pytest.raises(FormatError, match=r"t\.fits: truncated"):
        open_fits(path)
    fits.PrimaryHDU(np.zeros((2, 2, 2, 2), np.float32)).writeto(tmp_path / "four.fits")
    with pytest.raises(FormatError, match="expected a 2-D image or a 3-D cube"):
        open_fits(tmp_path / "four.fits")
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    with pytest.raises(FormatError, match="no image HDU"):
        open_fits(tmp_path / "empty.fits")
    _write(tmp_path / "date.fits", np.zeros((2, 2), np.uint16), DATE_OBS="yesterday noon")
    with pytest.raises(FormatError, match="DATE-OBS = 'yesterday noon'"):
        open_fits(tmp_path / "date.fits")
    with pytest.raises(SourceNotFoundError):
        open_fits(tmp_path / "missing_*.fits")


def test_open_reads_no_pixels(frames_folder, raise_if_dask_computes, monkeypatch):
    folder, truth = frames_folder

    def no_read(self, key):
        raise AssertionError("pixel data read at open time")

    with monkeypatch.context() as m:
        m.setattr(beamcat_fits._HduSlicer, "__getitem__", no_read)
        with raise_if_dask_computes():
            ds = open_fits(folder)
            total = ds.counts.sum("frame")  # building on it stays lazy too
    assert isinstance(ds.counts.data, da.Array) and isinstance(total.data, da.Array)
    np.testing.assert_array_equal(total.values, truth.sum(axis=0, dtype=np.uint64))


@pytest.mark.parametrize("chunks", [{"frame": 2}, {"frame": 3, "y": 4, "x": 5}, {"y": 1}])
def test_chunking(tmp_path, chunks):
    rng = np.random.default_rng(6)
    cube = rng.integers(0, 65536, (7, 6, 9), dtype=np.uint16)
    _write(tmp_path / "cube.fits", cube)
    ds = open_fits(tmp_path / "cube.fits")
    assert ds.counts.data.chunks[0] == (1,) * 7  # one frame per chunk, read by slicing
    rechunked = ds.counts.chunk(chunks)
    # integer sums: any chunking gives exactly numpy's answer
    np.testing.assert_array_equal(rechunked.values, cube)
    np.testing.assert_array_equal(rechunked.sum("frame").values, cube.sum(axis=0, dtype=np.uint64))


def test_open_dataset_sniffs_fits(frames_folder):
    folder, truth = frames_folder
    ds = beamcat.open_dataset(folder / "frame_2.fits")
    assert ds.attrs["format"] == "fits"
    np.testing.assert_array_equal(ds.counts.values[0], truth[1])
