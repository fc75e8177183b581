from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest
import tifffile

import beamcat
from beamcat._util import to_utc
from beamcat.catalog.imatlog import HEADER
from beamcat.catalog.tiff import TiffStack, open_tiff
from beamcat.errors import BeamcatWarning, FormatError, OptionError, SourceNotFoundError

# PROVENANCE.md gives means to 0.1 and min/max exactly
PSI = {
    "dc": (241, 2702, 296.8),
    "ob": (606, 16387, 2398.8),
    "h2o": (373, 21115, 1941.7),
}


def _frames(n: int, shape=(16, 16), dtype=np.uint16) -> np.ndarray:
    """Frames whose every pixel is distinct, so a misplaced frame or pixel shows."""
    return np.arange(n * shape[0] * shape[1], dtype=np.int64).reshape(n, *shape).astype(dtype)


def _write_files(folder, frames, name="frame_{}.tif", **kwargs) -> list:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(folder / name.format(i))
        tifffile.imwrite(paths[-1], frame, **kwargs)
    return paths


# --- real files ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(PSI))
def test_psi_radiograph(shared_data, kind):
    ds = open_tiff(shared_data / "waterinsand_neutra" / f"exp10s_{kind}.tif")
    counts = ds.counts.values
    assert counts.shape == (1, 900, 1500) and counts.dtype == np.uint16
    low, high, mean = PSI[kind]
    assert (counts.min(), counts.max()) == (low, high)
    assert counts.mean() == pytest.approx(mean, abs=0.05)  # PROVENANCE rounds to 0.1
    assert ds.attrs["format"] == "tiff" and ds.attrs["signal"] == "counts"
    assert ds.counts.attrs["units"] == "counts"


def test_psi_stack_list_and_glob(shared_data):
    folder = shared_data / "waterinsand_neutra"
    files = [folder / f"exp10s_{kind}.tif" for kind in ("dc", "ob", "h2o")]
    ds = open_tiff(files)
    expected = np.stack([tifffile.imread(f) for f in files])
    np.testing.assert_array_equal(ds.counts.values, expected)  # exact: same integers
    assert list(ds.file.values) == [f.name for f in files]

    globbed = open_tiff(folder / "exp10s_*.tif", chunks=2)
    names = sorted(p.name for p in folder.glob("exp10s_*.tif"))
    assert list(globbed.file.values) == names
    assert globbed.counts.chunks[0] == (2, 2, 2, 1)
    sums = globbed.counts.sum(("y", "x")).values
    assert list(sums) == [int(tifffile.imread(folder / n).sum(dtype=np.int64)) for n in names]


def test_pilatus_image(shared_data):
    path = shared_data / "dioptas" / "CeO2_Pilatus1M.tif"
    # its DateTime tag is a local time of no stated zone: read as UTC, and said so
    with pytest.warns(BeamcatWarning, match=r"CeO2_Pilatus1M\.tif: .*read as UTC; pass timezone="):
        ds = open_tiff(path)
    assert ds.attrs["timezone"] == "UTC" and "timezone_assumed" in ds.attrs
    counts = ds.counts.values
    assert counts.shape == (1, 1043, 981) and counts.dtype == np.int32
    np.testing.assert_array_equal(counts[0], tifffile.imread(path))
    assert (counts.min(), counts.max()) == (-2, 621698)
    assert counts.mean() == pytest.approx(123.9, abs=0.05)  # PROVENANCE rounds to 0.1
    assert ds.attrs["pixel_size"] == pytest.approx(172e-6, rel=1e-12)  # parsed from text
    assert ds.attrs["exposure_time"] == 3.0
    assert ds.attrs["threshold_energy"] == 15000.0
    assert ds.attrs["model"] == "PILATUS 1M-F"
    assert ds.attrs["software"] == "TVX TIFF v 1.3"
    assert ds.time.values[0] == np.datetime64("2014-10-24T16:33:09")
    # DateTime is local time: in Berlin summer time (until 26 October 2014) UTC is 2 h earlier
    berlin = open_tiff(path, timezone="Europe/Berlin")
    assert berlin.time.values[0] == np.datetime64("2014-10-24T14:33:09")


def test_areadetector_map_with_epics_times(shared_data):
    files = sorted((shared_data / "dioptas" / "map").glob("*.tif"))
    ds = open_tiff(shared_data / "dioptas" / "map")
    assert ds.counts.shape == (3, 1043, 981) and ds.counts.dtype == np.int32
    np.testing.assert_array_equal(ds.counts.values, np.stack([tifffile.imread(f) for f in files]))
    # areaDetector writes the EPICS timestamp (s and ns since 1990-01-01 UTC) as tags 65002/3
    # and the beamline's local date as text (tag 65010), truncated to the second and taken a
    # moment later (1.4 s in these files): they must agree within 2 s.
    for path, stamp in zip(files, ds.time.values, strict=True):
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            seconds, nanoseconds = tags[65002].value, tags[65003].value
            local = tags[65010].value.removeprefix("Date:")
        epics = np.datetime64("1990-01-01", "ns") + np.timedelta64(seconds, "s")
        assert stamp == epics + np.timedelta64(nanoseconds, "ns")
        chicago = to_utc([pd.to_datetime(local, format="%B %d, %Y %H:%M:%S")], "America/Chicago")
        assert abs(stamp - chicago[0]) < np.timedelta64(2, "s")


def test_open_dataset_sniffs_tiff(shared_data):
    ds = beamcat.open_dataset(shared_data / "waterinsand_neutra" / "exp10s_dc.tif")
    assert ds.attrs["format"] == "tiff" and ds.counts.shape == (1, 900, 1500)


# --- synthetic stacks ------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("chunks", [1, 3, 10, None])
def test_multipage_file(tmp_path, compression, chunks):
    frames = _frames(10)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, photometric="minisblack", compression=compression)
    ds = open_tiff(path, chunks=chunks)
    per_chunk = chunks or 10
    assert max(ds.counts.chunks[0]) == per_chunk
    np.testing.assert_array_equal(ds.counts.values, frames)


def test_multipage_big_endian(tmp_path):
    frames = _frames(5, dtype=np.float32)
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, frames, photometric="minisblack", byteorder=">")
    ds = open_tiff(path, chunks=2)
    assert ds.counts.dtype == np.float32
    np.testing.assert_array_equal(ds.counts.values, frames)


def test_several_multipage_files_chunk_across_files(tmp_path):
    frames = _frames(12)
    for i in range(3):  # 4 pages each
        tifffile.imwrite(
            tmp_path / f"part{i}.tif", frames[4 * i : 4 * i + 4], photometric="minisblack"
        )
    ds = open_tiff(tmp_path / "part*.tif", chunks=5)
    assert ds.counts.chunks[0] == (5, 5, 2)
    np.testing.assert_array_equal(ds.counts.values, frames)
    assert list(ds.file.values) == ["part0.tif"] * 4 + ["part1.tif"] * 4 + ["part2.tif"] * 4


@pytest.mark.parametrize("chunks", [1, 4, 11, None])
def test_folder_of_frames_natural_order(tmp_path, chunks):
    frames = _frames(11, shape=(8, 6), dtype=np.int32)
    _write_files(tmp_path / "run", frames)
    ds = open_tiff(tmp_path / "run", chunks=chunks)
    np.testing.assert_array_equal(ds.counts.values, frames)  # frame_10 after frame_9
    assert ds.file.values[10] == "frame_10.tif"


def test_chunks_by_dim_read_bands_of_rows(tmp_path, monkeypatch):
    frames = _frames(5)
    _write_files(tmp_path / "run", frames)
    ds = open_tiff(tmp_path / "run", chunks={"frame": 2, "y": 5, "x": 6})
    assert ds.counts.chunks == ((2, 2, 1), (5, 5, 5, 1), (6, 6, 4))
    np.testing.assert_array_equal(ds.counts.values, frames)

    bands = []
    real = TiffStack._read_raw

    def spy(self, path, rows, out):
        bands.append((rows.start, rows.stop))
        return real(self, path, rows, out)

    monkeypatch.setattr(TiffStack, "_read_raw", spy)
    np.testing.assert_array_equal(ds.counts[:, 6:9, 7:].values, frames[:, 6:9, 7:])
    assert bands == [(5, 10)] * 5  # one band of rows per file, read once for its 2 tiles


@pytest.mark.parametrize("chunks", [{"y": 3}, {"frame": 4, "y": 7, "x": 5}])
def test_bands_of_multipage_files(tmp_path, chunks):
    frames = _frames(6, shape=(10, 9), dtype=np.float32)
    tifffile.imwrite(tmp_path / "le.tif", frames[:3], photometric="minisblack")
    tifffile.imwrite(tmp_path / "ze.tif", frames[3:], photometric="minisblack", compression="zlib")
    ds = open_tiff([tmp_path / "le.tif", tmp_path / "ze.tif"], chunks=chunks)
    np.testing.assert_array_equal(ds.counts.values, frames)
    np.testing.assert_array_equal(ds.counts[2:5, 4:8].values, frames[2:5, 4:8])


def test_pickles_for_distributed_workers(tmp_path):
    frames = _frames(6)
    _write_files(tmp_path / "run", frames)
    ds = pickle.loads(pickle.dumps(open_tiff(tmp_path / "run", chunks=4)))
    np.testing.assert_array_equal(ds.counts.values, frames)


def test_open_is_lazy(tmp_path, raise_if_dask_computes):
    _write_files(tmp_path / "run", _frames(5))
    tifffile.imwrite(tmp_path / "stack.tif", _frames(5), photometric="minisblack")
    with raise_if_dask_computes():
        for source in (tmp_path / "run", tmp_path / "stack.tif"):
            ds = open_tiff(source, chunks=2)
            mean = ds.counts.mean("frame")
    assert mean.chunks is not None  # still dask-backed


# --- frame times -------------------------------------------------------------------------------


def _write_imat_log(path, times, *, stopping_after: int | None = None):
    """A log in the IMAT acquisition scripts' layout: ctime stamps, labelled monitor counts."""
    rows = [HEADER]
    for i, t in enumerate(pd.to_datetime(times)):
        stamp = t.strftime("%a %b %d %H:%M:%S %Y")
        rows.append(
            f"{stamp},Radiography,{i},Monitor 3 before: {1000 + i},Monitor 3 after: {2000 + i}"
        )
        if i == stopping_after:
            rows.append(f"{stamp},Stopping,{i},Monitor 3 before: 0,Monitor 3 after: 0")
    path.write_text("\n".join(rows) + "\n")


def test_frame_log_times(tmp_path):
    frames = _frames(4)
    _write_files(tmp_path / "run", frames)
    local = [
        "2024-12-13 14:20:00",
        "2024-12-13 14:20:30",
        "2024-12-13 14:21:00",
        "2024-12-13 14:21:30",
    ]
    _write_imat_log(tmp_path / "log.csv", local, stopping_after=1)
    ds = open_tiff(tmp_path / "run", frame_log=tmp_path / "log.csv", timezone="America/New_York")
    # New York is UTC-5 in December
    expected = pd.to_datetime(local).to_numpy() + np.timedelta64(5, "h")
    np.testing.assert_array_equal(ds.time.values, expected)
    np.testing.assert_array_equal(ds.monbefore.values, [1000, 1001, 1002, 1003])
    np.testing.assert_array_equal(ds.elapsed.values, [0, 30, 60, 90])
    np.testing.assert_array_equal(ds.counts.values, frames)


def test_frame_log_count_mismatch(tmp_path):
    _write_files(tmp_path / "run", _frames(4))
    _write_imat_log(tmp_path / "log.csv", ["2024-12-13 14:20:00", "2024-12-13 14:20:30"])
    with pytest.raises(FormatError, match=r"log\.csv.*2 frame rows.*4"):
        open_tiff(tmp_path / "run", frame_log=tmp_path / "log.csv", timezone="UTC")


def test_datetime_tags(tmp_path):
    stamps = ["2023:05:01 10:00:00", "2023:05:01 10:00:05", "2023:05:01 10:00:10"]
    frames = _frames(3)
    for i, stamp in enumerate(stamps):
        tifffile.imwrite(tmp_path / f"f{i}.tif", frames[i], datetime=stamp)
    ds = open_tiff(tmp_path, timezone="Europe/London")
    # headers differ from the first file's (DateTime), so these frames go through tifffile
    np.testing.assert_array_equal(ds.counts.values, frames)
    # London is UTC+1 in May
    expected = pd.to_datetime(stamps, format="%Y:%m:%d %H:%M:%S").to_numpy() - np.timedelta64(
        1, "h"
    )
    np.testing.assert_array_equal(ds.time.values, expected)
    assert "time" not in open_tiff(tmp_path, times="none").coords


def test_datetime_tags_missing(tmp_path):
    tifffile.imwrite(tmp_path / "f0.tif", _frames(1)[0], datetime="2023:05:01 10:00:00")
    tifffile.imwrite(tmp_path / "f1.tif", _frames(1)[0], datetime=False)
    assert "time" not in open_tiff(tmp_path).coords  # auto: times only when every file has one
    with pytest.raises(FormatError, match=r"f1\.tif.*DateTime"):
        open_tiff(tmp_path, times="tags")


# --- bad input ---------------------------------------------------------------------------------


def test_bad_options(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", _frames(4), photometric="minisblack")
    for chunks in (0, {"z": 2}, {"y": 0}, {"frame": True}, {"x": 2.5}):
        with pytest.raises(OptionError, match=r"chunks=.*positive"):
            open_tiff(tmp_path / "stack.tif", chunks=chunks)
    with pytest.raises(OptionError, match="times='files'"):
        open_tiff(tmp_path / "stack.tif", times="files")
    with pytest.raises(FormatError, match=r"stack\.tif.*each file one frame"):
        open_tiff(tmp_path / "stack.tif", times="tags")


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(SourceNotFoundError, match="matches no file"):
        open_tiff(tmp_path / "nothing_*.tif")


def test_not_a_tiff(tmp_path):
    _write_files(tmp_path, _frames(2))
    (tmp_path / "frame_2.tif").write_bytes(b"this is not a TIFF at all")
    with pytest.raises(FormatError, match=r"frame_2\.tif.*not a readable TIFF"):
        open_tiff(tmp_path)
    with pytest.raises(FormatError, match=r"frame_2\.tif.*not a readable TIFF"):
        open_tiff(tmp_path / "frame_2.tif")


def test_rgb_pages_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(FormatError, match=r"rgb\.tif.*2-D grayscale"):
        open_tiff(tmp_path / "rgb.tif")


def test_shape_mismatch_of_other_size_found_at_open(tmp_path):
    _write_files(tmp_path, _frames(3))
    tifffile.imwrite(tmp_path / "frame_3.tif", np.zeros((16, 17), np.uint16))
    with pytest.raises(FormatError, match=r"frame_3\.tif.*\(16, 17\) uint16.*expected \(16, 16\)"):
        open_tiff(tmp_path, times="none")


def test_shape_mismatch_of_same_size_found_at_compute(tmp_path):
    _write_files(tmp_path, _frames(3))
    odd = tmp_path / "frame_3.tif"
    tifffile.imwrite(odd, np.zeros((8, 32), np.uint16))  # same bytes, other shape
    assert odd.stat().st_size == (tmp_path / "frame_0.tif").stat().st_size
    ds = open_tiff(tmp_path, times="none", chunks=2)  # 4 files > no header read after the first
    np.testing.assert_array_equal(ds.counts[:2].values, _frames(3)[:2])  # good chunk reads fine
    with pytest.raises(FormatError, match=r"frame_3\.tif.*\(8, 32\).*expected \(16, 16\)"):
        ds.counts.compute()
    banded = open_tiff(tmp_path, times="none", chunks={"y": 4})  # a band is checked alike
    with pytest.raises(FormatError, match=r"frame_3\.tif.*\(8, 32\).*expected \(16, 16\)"):
        banded.counts[:, 4:8].compute()


# --- scale -----------------------------------------------------------------------------------


def test_open_10000_files_reads_one_header(tmp_path, raise_if_dask_computes, monkeypatch):
    frame = _frames(1)[0]
    folder = tmp_path / "big"
    folder.mkdir()
    tifffile.imwrite(folder / "frame_00000.tif", frame)
    data = (folder / "frame_00000.tif").read_bytes()
    for i in range(1, 10_000):  # writing the same bytes is much faster than writing TIFFs
        (folder / f"frame_{i:05d}.tif").write_bytes(data)

    opened, decoded = [], []
    real_init, real_asarray = tifffile.TiffFile.__init__, tifffile.TiffPage.asarray

    def counting_init(self, *args, **kwargs):
        opened.append(args[0])
        real_init(self, *args, **kwargs)

    def counting_asarray(self, *args, **kwargs):
        decoded.append(self)
        return real_asarray(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counting_init)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", counting_asarray)
    start = time.perf_counter()
    with raise_if_dask_computes():
        ds = open_tiff(folder)
    elapsed = time.perf_counter() - start
    assert len(opened) == 1 and not decoded  # one header, no pixels
    assert elapsed < 2.0, f"opening 10,000 files took {elapsed:.2f} s"
    assert ds.counts.shape == (10_000, 16, 16)
    assert ds.counts.chunks[0][0] == 256  # at most 256 files per task
    monkeypatch.undo()
    np.testing.assert_array_equal(ds.counts[-1].values, frame)  # reads the last 16 files only


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_default_chunks_band_large_plain_frames_only(tmp_path, compression):
    # 1100 x 1000 uint16 frames (2.1 MiB): plain ones come in bands of rows of 4 frames
    # (8 MiB), read row by row; compressed pages are decoded whole, so whole frames
    frames = np.arange(3 * 1100 * 1000, dtype=np.uint16).reshape(3, 1100, 1000)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, photometric="minisblack", compression=compression)
    counts = open_tiff(path).counts
    band = 8 * 2**20 // (4 * 2000)  # rows of 4 frames in 8 MiB
    assert counts.chunks[1] == ((band, 1100 - band) if compression is None else (1100,))
    np.testing.assert_array_equal(counts.values, frames)
