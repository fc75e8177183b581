"""Damaged FITS and SPICE headers: a FormatError naming the file, never astropy's own errors.

Each case is one finding of the fuzzing run of issue 8: the header cards a
camera or SPICE file depends on, garbled one at a time.
"""

import numpy as np
import pytest
from astropy.io import fits

from beamcat.catalog.fits import check_structure, open_fits
from beamcat.catalog.spice import open_spice, write_spice_l2
from beamcat.errors import FormatError

QL = "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits"
SIT = "sunraster_spice/solo_L2_spice-n-sit_20200620T235901_V01_16777431-000.fits"


def _set_card(raw: bytes, key: str, value: str) -> bytes:
    """`raw` with the first ``KEY = ...`` card's value replaced (the card stays 80 bytes)."""
    at = raw.index(key.ljust(8).encode() + b"= ")
    card = (key.ljust(8) + "= " + value.rjust(20)).ljust(80).encode()
    return raw[:at] + card + raw[at + 80 :]


@pytest.fixture
def camera_file(tmp_path):
    path = tmp_path / "frame.fits"
    fits.PrimaryHDU(np.arange(12 * 10, dtype=np.float32).reshape(12, 10)).writeto(path)
    return path


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("BITPIX", "", r"BITPIX: ''; expected an integer"),  # astropy: TypeError abs('Undefined')
        ("BITPIX", "12", r"BITPIX = 12: expected one of 8, 16, 32, 64, -32, -64"),
        ("NAXIS", "-3", r"NAXIS = -3: expected 0 to 999"),
        ("NAXIS", "999999999999", r"NAXIS = 999999999999: expected 0 to 999"),  # astropy hangs
        ("NAXIS1", "999999999999", r"truncated: HDU 0 announces"),  # astropy: Errno 22
        ("NAXIS2", "'x'", r"NAXIS2: \"'x'\"; expected an integer"),
    ],
)
def test_garbled_structure_cards(camera_file, key, value, expected):
    camera_file.write_bytes(_set_card(camera_file.read_bytes(), key, value))
    with pytest.raises(FormatError, match=r"frame\.fits: HDU 0 |frame\.fits: truncated"):
        open_fits(camera_file)
    with pytest.raises(FormatError, match=expected):
        check_structure(camera_file)


def test_missing_naxis1_card(camera_file):
    # astropy: KeyError 'NAXIS1'
    camera_file.write_bytes(camera_file.read_bytes().replace(b"NAXIS1  =", b"NAXISX  =", 1))
    with pytest.raises(FormatError, match=r"frame\.fits: HDU 0 NAXIS1: no such card"):
        open_fits(camera_file)


def test_header_without_end_card(camera_file):
    # astropy: OSError "Header missing END card"
    raw = camera_file.read_bytes()
    camera_file.write_bytes(raw.replace(b"END" + b" " * 77, b"ENX" + b" " * 77))
    with pytest.raises(FormatError, match=r"frame\.fits: HDU 0 header .* is cut: no END card"):
        open_fits(camera_file)
    camera_file.write_bytes(raw[:1000])  # cut inside the header
    with pytest.raises(FormatError, match=r"frame\.fits: HDU 0 header .* is cut"):
        open_fits(camera_file)


def test_huge_naxis_of_a_real_spice_file_fails_at_once(shared_data, tmp_path):
    # the fuzzing run's hang: astropy spent > 20 s on NAXIS = 999999999999. The check
    # reads a few header blocks; no clock is asserted, the test would time out instead.
    path = tmp_path / (shared_data / QL).name
    path.write_bytes(_set_card((shared_data / QL).read_bytes(), "NAXIS", "999999999999"))
    with pytest.raises(FormatError, match=r"solo_L2_spice.*: HDU 0 NAXIS = 999999999999"):
        open_spice(path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"HPLT-TAN", b"HPLT-TXN"),  # wcslib: InconsistentAxisTypesError
        (b"CUNIT3  = 'nm", b"CUNIT3  = 'q?"),  # wcslib: InvalidTransformError
    ],
)
def test_garbled_wcs_of_a_real_spice_file(shared_data, tmp_path, old, new):
    for name in (QL, SIT):
        path = tmp_path / (shared_data / name).name
        raw = (shared_data / name).read_bytes()
        assert old in raw
        path.write_bytes(raw.replace(old, new, 1))
        with pytest.raises(FormatError, match=r"solo_L2_spice.*damaged FITS header"):
            open_spice(path)


def test_intact_files_pass_the_structure_check(shared_data, tmp_path):
    for name in (QL, SIT):
        check_structure(shared_data / name)
    data = np.ones((1, 5, 6, 7), np.float32)
    path = write_spice_l2(
        tmp_path / "w.fits",
        [{"name": "A", "data": data, "wavelength_start": 70.0, "wavelength_step": 0.01}],
    )
    check_structure(path)  # primary window + the VARIABLE_KEYWORDS binary table
    assert open_spice(path).radiance.shape == data.shape


def test_data_cut_off_at_compute_time(camera_file):
    ds = open_fits(camera_file)
    camera_file.write_bytes(camera_file.read_bytes()[:2880])  # cut after opening
    with pytest.raises(FormatError, match=r"frame\.fits: cannot read the image data"):
        ds.counts.compute()
