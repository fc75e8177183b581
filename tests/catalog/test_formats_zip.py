"""MIB acquisitions zipped as RosettaSciIO ships them open like the unzipped files beside them."""

import zipfile

import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.catalog.formats import sniff_format
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

ROOT = "rosettasciio_mib"
# archive -> members compared with the copies unzipped beside it (PROVENANCE.md)
CASES = {
    "Merlin_navigation4x2_ROI": ["001_4x2_6bit.mib", "002_4x2_6bit_roi128.mib"],
    "Merlin_navigation4x2_signalNx256_ROI": [
        "002_merlin_test_roi_sig256x128_nav4x2_hot_pixel_52x_39y.mib",
        "003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib",
    ],
    "Merlin_Single_Quad": [
        "Quad_9_Frame_CounterDepth_1_Rows_256RAW.mib",
        "Single_9_Frame_CounterDepth_12_Rows_256.mib",
    ],
}
ARCHIVE_ATTRS = ("source", "member", "extracted_to")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BEAMCAT_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize(("archive", "member"), [(a, m) for a, ms in CASES.items() for m in ms])
def test_member_opens_as_the_unzipped_file(shared_data, archive, member, raise_if_dask_computes):
    zipped = shared_data / ROOT / f"{archive}.zip"
    assert sniff_format(zipped) == "mib"
    with raise_if_dask_computes():
        ds = beamcat.open_dataset(zipped, member=member)
    ref = beamcat.open_dataset(shared_data / ROOT / archive / member)
    assert ds.attrs["source"] == str(zipped) and ds.attrs["member"] == member
    # same frames, coordinates (exposure, time, scan shape) and header attrs, exactly;
    # only where it came from differs
    same = ds.copy()
    same.attrs = {k: v for k, v in ds.attrs.items() if k not in ARCHIVE_ATTRS}
    same.attrs["source"] = ref.attrs["source"]
    xr.testing.assert_identical(same, ref)


def test_member_only_in_the_archive(shared_data, cache):
    zipped = shared_data / ROOT / "Merlin_Single_Quad.zip"
    name = "Quad_9_Frame_CounterDepth_24_Rows_256.mib"  # not unzipped in shared/data (9 MB)
    with pytest.raises(SourceNotFoundError, match=f"Merlin_Single_Quad.zip holds it.*{name}"):
        beamcat.open_dataset(shared_data / ROOT / "Merlin_Single_Quad" / name.replace("mib", "hdr"))
    ds = beamcat.open_dataset(zipped, member=name)
    assert ds.sizes == {"frame": 9, "y": 512, "x": 512} and ds.attrs["counter_depth"] == 24
    # planted truth: the member's bytes read here, 9 x (768-byte header + 512x512 big-endian
    # uint32 pixels, U32 for 24-bit non-RAW frames); integers, so exactly equal
    with zipfile.ZipFile(zipped) as zf:
        raw = np.frombuffer(zf.read(name), np.uint8).reshape(9, 768 + 512 * 512 * 4)
    expected = raw[:, 768:].copy().view(">u4").reshape(9, 512, 512)
    np.testing.assert_array_equal(ds.counts.values, expected)
    copy = next(cache.rglob(name))
    stamp = copy.stat().st_mtime_ns
    beamcat.open_dataset(zipped, member=name)
    assert copy.stat().st_mtime_ns == stamp  # the second open reuses the copy


def test_several_acquisitions_need_a_member(shared_data):
    zipped = shared_data / ROOT / "Merlin_navigation4x2_ROI.zip"
    with pytest.raises(OptionError, match="holds 2 MIB files: 001_4x2_6bit.mib, 002") as err:
        beamcat.open_dataset(zipped)
    assert "member=" in str(err.value) and str(zipped) in str(err.value)
    with pytest.raises(OptionError, match="member='nope.mib' matches no .mib"):
        beamcat.open_dataset(zipped, member="nope.mib")
    ds = beamcat.open_dataset(zipped, member="*roi128*")  # a pattern picking one
    assert ds.attrs["member"] == "002_4x2_6bit_roi128.mib"
    with pytest.raises(OptionError, match="applies to a .zip archive only"):
        beamcat.open_dataset(shared_data / ROOT / "Merlin_navigation4x2_ROI", member="x.mib")


def test_damaged_archive_says_so(shared_data, tmp_path):
    data = (shared_data / ROOT / "Merlin_navigation4x2_signalNx256_ROI.zip").read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])  # the central directory is gone
    with pytest.raises(FormatError, match="not a readable zip archive"):
        beamcat.open_dataset(cut, format="mib")
    flipped = bytearray(data)
    flipped[200:260] = bytes(60)  # zero a stretch of the first member's deflate stream
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(FormatError, match="cannot be read"):
        beamcat.open_dataset(bad, member="002_*")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))  # nothing half-written
