"""Tests of the Merlin MIB reader and writer against real files and planted data."""

from __future__ import annotations

import os
import pickle
import time
import zipfile

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamcat
from beamcat.catalog import mib, mib_header
from beamcat.catalog._mib_columns import parse_columns
from beamcat.catalog.mib import MibFrames, decode_frames, open_mib
from beamcat.catalog.mib_header import FrameLayout, format_frame_header, read_frame_headers
from beamcat.catalog.mib_scan import detect_flyback, scan_index
from beamcat.catalog.mib_write import encode_frames, write_mib
from beamcat.errors import BeamcatWarning, FormatError, OptionError

EPSIC = "epsic_tools_mib"
ROSETTA = "rosettasciio_mib"
QUAD = f"{ROSETTA}/Merlin_Single_Quad"
DTYPE_OF_DEPTH = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}


# ---------------------------------------------------------------- real files: epsic_tools


@pytest.mark.parametrize("depth", [1, 6, 12, 24])
@pytest.mark.parametrize("raw", [True, False])
def test_epsic_single_frames(shared_data, depth, raw):
    path = shared_data / EPSIC / f"test_{depth}bit_{'RAW' if raw else 'notRAW'}_1frame.mib"
    ds = open_mib(path)
    counts = ds.counts.values
    assert ds.counts.dims == ("frame", "y", "x")
    assert counts.shape == (1, 512, 512)
    assert counts.dtype == DTYPE_OF_DEPTH[depth]
    assert ds.attrs["counter_depth"] == depth
    assert ds.attrs["raw"] is raw
    assert ds.attrs["layout"] == "2x2"
    assert ds.attrs["pixel_size"] == 55e-6
    # PROVENANCE: blank frames; the RAW 12/24-bit payloads hold a single byte = 1
    assert int(np.count_nonzero(counts)) == (1 if raw and depth >= 12 else 0)
    assert counts.max() <= 1
    # the .hdr sidecar
    assert ds.attrs["chip_id"] == "W530_J6,W530_L6,W530_K5,W530_B5"
    assert ds.attrs["assembly_size"] == "2x2"
    assert ds.attrs["thresholds_keV"][:2] == [10.0, 500.0]
    assert ds.attrs["sensor_bias_V"] == 120.0
    assert ds.exposure.values.tolist() == [0.01]
    assert ds.exposure.attrs["units"] == "s"


def test_epsic_time_is_the_utc_mq1a_stamp(shared_data):
    ds = open_mib(shared_data / EPSIC / "test_12bit_notRAW_1frame.mib")
    # header: local "2019-09-18 11:14:04.255644", MQ1A "2019-09-18T10:14:04.255644699Z"
    assert ds.time.values[0] == np.datetime64("2019-09-18T10:14:04.255644699", "ns")


# ---------------------------------------------------------------- real files: RosettaSciIO

# (file, shape, max, mean, non-zero fraction) from PROVENANCE.md; means and fractions
# are quoted to 3 significant digits there, hence the tolerances below.
ROSETTA_FILES = [
    ("Quad_1_Frame_CounterDepth_1_Rows_256", (1, 512, 512), 1, 0.039, 0.0394),
    ("Quad_1_Frame_CounterDepth_6_Rows_256", (1, 512, 512), 63, 0.440, 0.0399),
    ("Quad_1_Frame_CounterDepth_12_Rows_256", (1, 512, 512), 4093, 3.227, 0.0400),
    ("Quad_1_Frame_CounterDepth_24_Rows_256", (1, 512, 512), 4095, 2.971, 0.0400),
    ("Quad_9_Frame_CounterDepth_1_Rows_256", (9, 512, 512), 1, 0.039, 0.0393),
    ("Quad_9_Frame_CounterDepth_6_Rows_256", (9, 512, 512), 63, 0.438, 0.0397),
    ("Single_1_Frame_CounterDepth_1_Rows_256", (1, 256, 256), 1, 0.037, 0.0366),
    ("Single_1_Frame_CounterDepth_6_Rows_256", (1, 256, 256), 63, 0.371, None),
    ("Single_1_Frame_CounterDepth_12_Rows_256", (1, 256, 256), 2239, 0.441, None),
    ("Single_1_Frame_CounterDepth_24_Rows_256", (1, 256, 256), 2255, 0.449, None),
    ("Single_9_Frame_CounterDepth_1_Rows_256", (9, 256, 256), 1, 0.037, None),
    ("Single_9_Frame_CounterDepth_6_Rows_256", (9, 256, 256), 63, 0.369, None),
    ("Single_9_Frame_CounterDepth_12_Rows_256", (9, 256, 256), 2216, 0.442, None),
    ("Single_9_Frame_CounterDepth_24_Rows_256", (9, 256, 256), 2074, 0.438, None),
]


@pytest.mark.parametrize(("name", "shape", "vmax", "mean", "nonzero"), ROSETTA_FILES)
def test_rosettasciio_counts(shared_data, name, shape, vmax, mean, nonzero):
    ds = open_mib(shared_data / QUAD / f"{name}.mib")
    counts = ds.counts.values
    depth = int(name.split("CounterDepth_")[1].split("_")[0])
    assert counts.shape == shape
    assert counts.dtype == DTYPE_OF_DEPTH[depth]
    assert ds.attrs["counter_depth"] == depth
    assert counts.min() == 0
    assert counts.max() == vmax
    assert counts.mean() == pytest.approx(mean, abs=5e-4)  # quoted to 3 digits
    if nonzero is not None:
        assert np.count_nonzero(counts) / counts.size == pytest.approx(nonzero, abs=5e-5)
    assert ds.exposure.values == pytest.approx(0.001)
    assert ds.attrs["thresholds_keV"][0] == 2.0


def _summed(path):
    return open_mib(path).counts.values.astype(np.float64).sum(axis=0)


@pytest.mark.parametrize("kind", ["Quad", "Single"])
def test_raw_matches_non_raw_acquisition(shared_data, kind):
    # RAW and U08 1-bit files are two acquisitions ~2 s apart of the same beam: the
    # summed images agree pixel by pixel up to Poisson noise. The untangling with
    # epsic_tools' chip order [1|2|3|4] gives a correlation of only 0.49 here.
    raw = _summed(shared_data / QUAD / f"{kind}_9_Frame_CounterDepth_1_Rows_256RAW.mib")
    u08 = _summed(shared_data / QUAD / f"{kind}_9_Frame_CounterDepth_1_Rows_256.mib")
    assert np.corrcoef(raw.ravel(), u08.ravel())[0, 1] > 0.99
    assert raw.sum() == pytest.approx(u08.sum(), rel=0.01)  # ~1e5 counts: 1 % is 3 sigma


@pytest.mark.parametrize("kind", ["Quad", "Single"])
def test_raw_reencodes_to_the_file_bytes(shared_data, kind):
    # decoding then encoding a real RAW file must give back its payload byte for byte
    path = shared_data / QUAD / f"{kind}_9_Frame_CounterDepth_1_Rows_256RAW.mib"
    ds = open_mib(path)
    layout = read_frame_headers(path, hdr_depth=None, timezone="UTC").layout
    records = np.fromfile(path, dtype=np.uint8).reshape(9, layout.frame_size)
    payload = records[:, layout.header_size :]
    np.testing.assert_array_equal(encode_frames(ds.counts.values, layout), payload)


def test_quad_12_and_24_bit_from_zip(shared_data, tmp_path):
    # Quad_9 12/24-bit .mib exist only inside the zip; both are 9-frame acquisitions of
    # the same beam, so clipped summed images correlate closely (measured 0.9995)
    with zipfile.ZipFile(shared_data / ROSETTA / "Merlin_Single_Quad.zip") as z:
        for depth in (12, 24):
            for ext in (".mib", ".hdr"):
                z.extract(f"Quad_9_Frame_CounterDepth_{depth}_Rows_256{ext}", tmp_path)
    images = {}
    for depth in (12, 24):
        ds = open_mib(tmp_path / f"Quad_9_Frame_CounterDepth_{depth}_Rows_256.mib")
        counts = ds.counts.values
        assert counts.shape == (9, 512, 512)
        assert counts.dtype == DTYPE_OF_DEPTH[depth]
        assert counts.max() == 4095
        assert np.count_nonzero(counts) / counts.size == pytest.approx(0.0398, abs=5e-4)
        images[depth] = np.minimum(counts.sum(axis=0), 100).astype(float)
    assert np.corrcoef(images[12].ravel(), images[24].ravel())[0, 1] > 0.99


def test_navigation_4x2(shared_data):
    folder = shared_data / ROSETTA / "Merlin_navigation4x2_ROI"
    full = open_mib(folder / "001_4x2_6bit.mib", scan_shape=(2, 4))
    assert full.counts.dims == ("scan_y", "scan_x", "y", "x")
    assert full.counts.shape == (2, 4, 256, 256)
    assert float(full.counts.mean()) == pytest.approx(6.91, abs=5e-3)
    assert full.frame.values.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    roi = open_mib(folder / "002_4x2_6bit_roi128.mib")
    counts = roi.counts.values
    assert counts.shape == (8, 128, 256)  # ROI: 256 wide, 128 high
    assert counts.max() == 63
    assert counts.mean() == pytest.approx(12.45, abs=5e-3)
    assert np.count_nonzero(counts) / counts.size == pytest.approx(0.82, abs=5e-3)


@pytest.mark.parametrize(
    ("name", "rows", "vmax", "nonzero"), [("002", 128, 10, 22), ("003", 64, 15, 11)]
)
def test_roi_hot_pixel(shared_data, name, rows, vmax, nonzero):
    folder = shared_data / ROSETTA / "Merlin_navigation4x2_signalNx256_ROI"
    path = next(folder.glob(f"{name}_*.mib"))
    ds = open_mib(path)
    # Merlin 1.5 .hdr says ScanX 4, ScanY 2
    assert ds.attrs["scan_shape_from"] == "hdr"
    assert ds.counts.shape == (2, 4, rows, 256)
    counts = ds.counts.values
    assert counts.max() == vmax
    assert np.count_nonzero(counts) == nonzero
    # the hot pixel at x=52, y=39 (file row order) fires in every frame
    assert np.all(counts[:, :, 39, 52] > 0)


# ---------------------------------------------------------------- writer round trips


def _frames(rng, n, shape, depth):
    return rng.integers(0, 1 << depth, size=(n, *shape), dtype=np.uint32).astype(
        DTYPE_OF_DEPTH[depth]
    )


@pytest.mark.parametrize("depth", [1, 6, 12, 24])
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize(("layout", "shape"), [("1x1", (256, 256)), ("2x2", (512, 512))])
def test_write_read_round_trip(tmp_path, depth, raw, layout, shape):
    rng = np.random.default_rng(depth)
    frames = _frames(rng, 3, shape, depth)
    exposure = [0.001, 0.002, 0.0005]
    start = np.datetime64("2024-03-01T12:00:00.123456789", "ns")
    stamps = start + np.array([0, 10, 20], dtype="timedelta64[ms]")
    path = write_mib(
        tmp_path / "a.mib",
        frames,
        depth=depth,
        raw=raw,
        layout=layout,
        exposure=exposure,
        timestamps=stamps,
    )
    ds = open_mib(path)
    np.testing.assert_array_equal(ds.counts.values, frames)  # exact: integer counts
    assert ds.counts.dtype == DTYPE_OF_DEPTH[depth]
    assert ds.attrs["raw"] is raw and ds.attrs["counter_depth"] == depth
    np.testing.assert_array_equal(ds.exposure.values, exposure)
    np.testing.assert_array_equal(ds.time.values, stamps)
    assert ds.attrs["assembly_size"] == layout


def test_write_roi_frames(tmp_path):
    frames = _frames(np.random.default_rng(0), 4, (128, 256), 12)
    ds = open_mib(write_mib(tmp_path / "roi.mib", frames, depth=12))
    np.testing.assert_array_equal(ds.counts.values, frames)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    depth=st.sampled_from([1, 6, 12, 24]),
    quad=st.booleans(),
    chip=st.sampled_from([8, 16, 32]),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_raw_codec_round_trip(depth, quad, chip, n, seed):
    # encode/decode are inverses for any chip size whose pixel count fills 64-bit groups
    shape = (2 * chip, 2 * chip) if quad else (chip, chip)
    frames = _frames(np.random.default_rng(seed), n, shape, depth)
    from beamcat.catalog.mib_write import _frame_layout

    layout = _frame_layout(shape, depth, True, "2x2" if quad else "1x1")
    payload = encode_frames(frames, layout)
    assert payload.shape == (n, layout.payload_size)
    np.testing.assert_array_equal(decode_frames(payload, layout), frames)


def test_write_streams_blocks(tmp_path):
    rng = np.random.default_rng(1)
    frames = _frames(rng, 10, (64, 64), 12)
    blocks = (frames[i : i + 3] for i in range(0, 10, 3))  # a generator, never one array
    ds = open_mib(write_mib(tmp_path / "s.mib", blocks, depth=12, exposure=0.002))
    np.testing.assert_array_equal(ds.counts.values, frames)
    assert ds.attrs["frames_in_acquisition"] == 10


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(OptionError, match="outside 0..63"):
        write_mib(tmp_path / "a.mib", np.full((1, 8, 8), 64), depth=6)
    with pytest.raises(OptionError, match="depth"):
        write_mib(tmp_path / "a.mib", np.zeros((1, 8, 8)), depth=8)
    with pytest.raises(OptionError, match="no frames"):
        write_mib(tmp_path / "a.mib", iter([]))
    assert not (tmp_path / "a.mib").exists()  # atomic: nothing half-written


# ---------------------------------------------------------------- fly-back and scan shape


def _plant_scan(tmp_path, exposure, name="scan.mib", **kw):
    """A MIB whose frame k is filled with k, so positions can be traced back."""
    n = len(exposure)
    frames = np.broadcast_to(np.arange(n, dtype=np.uint16)[:, None, None], (n, 8, 8))
    return write_mib(tmp_path / name, np.ascontiguousarray(frames), exposure=exposure, **kw)


def test_flyback_detection_drops_column_and_skips_frames(tmp_path):
    # 3 junk frames, then 4 lines of 6 frames whose first is the long fly-back, then 2 extra
    exposure = np.full(3 + 4 * 6 + 2, 0.001)
    exposure[3::6] = 0.04
    ds = open_mib(_plant_scan(tmp_path, exposure))
    assert ds.counts.dims == ("scan_y", "scan_x", "y", "x")
    assert ds.counts.shape == (4, 5, 8, 8)
    expected = 3 + np.arange(4)[:, None] * 6 + np.arange(1, 6)
    np.testing.assert_array_equal(ds.counts.values[:, :, 0, 0], expected)
    np.testing.assert_array_equal(ds.frame.values, expected)
    assert np.all(ds.exposure.values == 0.001)
    assert ds.attrs["scan_shape_from"] == "flyback"
    assert ds.attrs["frames_skipped"] == 3
    assert ds.attrs["flyback_line_length"] == 6


def test_detect_flyback_irregular_first_lines():
    exposure = np.full(40, 0.001)
    exposure[[0, 2, 7, 14, 21, 28, 35]] = 0.1  # settling lines of 2 and 5, then lines of 7
    assert detect_flyback(exposure) == (7, 7)


@pytest.mark.parametrize(
    "exposure",
    [np.full(30, 0.001), np.r_[0.05, np.full(29, 0.001)], np.r_[np.full(29, 0.001), 0.002], [0.1]],
)
def test_detect_flyback_none(exposure):
    assert detect_flyback(np.asarray(exposure)) is None


@pytest.mark.parametrize(
    ("frames", "flyback", "shape"),
    [
        (262144, "auto", (512, 511)),
        (262144, False, (512, 512)),
        (261632, "auto", (511, 512)),
        (65536, "auto", (256, 255)),
        (65280, "auto", (255, 256)),
        (16384, "auto", (128, 127)),
        (16256, "auto", (127, 128)),
        (1024, "auto", (32, 31)),
        (256, "auto", (16, 15)),
        (1000, "auto", (1000,)),
    ],
)
def test_frame_count_table(frames, flyback, shape):
    index, attrs = scan_index(np.full(frames, 0.001), flyback=flyback)
    assert index.shape == shape
    if len(shape) == 2 and shape[1] % 2:  # fly-back entries: column 0 of every line dropped
        assert index[1, 0] == shape[1] + 2
    assert attrs["scan_shape_from"] == ("none" if frames == 1000 else "frame_count")


def test_explicit_scan_shape(tmp_path):
    exposure = np.full(12, 0.001)
    path = _plant_scan(tmp_path, exposure)
    plain = open_mib(path, scan_shape=(3, 4))
    assert plain.counts.shape == (3, 4, 8, 8)
    np.testing.assert_array_equal(plain.counts.values[:, :, 0, 0], np.arange(12).reshape(3, 4))
    forced = open_mib(path, scan_shape=(3, 4), flyback=True)
    np.testing.assert_array_equal(forced.frame.values, np.arange(12).reshape(3, 4)[:, 1:])
    exposure[::4] = 0.01  # now the exposures show a fly-back frame opening every line
    auto = open_mib(_plant_scan(tmp_path, exposure, name="fb.mib"), scan_shape=(3, 4))
    assert auto.counts.shape == (3, 3, 8, 8)
    with pytest.raises(OptionError, match="scan_shape"):
        open_mib(path, scan_shape=(5, 4))
    with pytest.raises(OptionError, match="flyback"):
        open_mib(path, flyback="yes")
    with pytest.raises(OptionError, match="no fly-back"):
        open_mib(path, flyback=True)


def test_scan_shape_from_hdr(tmp_path):
    path = _plant_scan(tmp_path, np.full(6, 0.001), scan_shape=(2, 3))
    ds = open_mib(path)
    assert ds.counts.shape == (2, 3, 8, 8)
    assert ds.attrs["scan_shape_from"] == "hdr"


# ---------------------------------------------------------------- bad input


def _small(tmp_path, n=3):
    return write_mib(tmp_path / "ok.mib", np.zeros((n, 16, 16), np.uint16), depth=12)


def test_truncated_file(tmp_path):
    path = _small(tmp_path)
    frame = 384 + 16 * 16 * 2
    os.truncate(path, 3 * frame - 100)
    with pytest.raises(
        FormatError, match=rf"ok.mib: truncated.*frame 2 is cut at byte offset {2 * frame}"
    ):
        open_mib(path)


@pytest.mark.parametrize(
    "folder",
    [EPSIC, QUAD, *(f"{ROSETTA}/Merlin_navigation4x2_{k}ROI" for k in ("", "signalNx256_"))],
)
def test_header_columns_equal_frame_by_frame_parsing(shared_data, folder):
    # the vectorised parser (whole byte columns) against the frame-by-frame one, exactly
    for path in sorted((shared_data / folder).glob("*.mib")):
        _assert_columns_equal_rows(path)


def test_header_columns_with_flyback_frames_and_old_headers(tmp_path):
    # fly-back frames have a wider MQ1A shutter field ("50000000ns"): columns still parse
    exposure = np.full(12, 0.001)
    exposure[::4] = 0.05
    frames = np.zeros((12, 8, 8), np.uint16)
    _assert_columns_equal_rows(write_mib(tmp_path / "fly.mib", frames, exposure=exposure))
    # old headers without MQ1A: the PC's local time and shutter in s
    path = write_mib(tmp_path / "old.mib", frames, exposure=exposure)
    layout = read_frame_headers(path, hdr_depth=None, timezone="UTC").layout
    headers = [h.split(b",MQ1A")[0] + b"," for h in _headers(path)]
    raw = np.zeros((len(headers), layout.header_size), np.uint8)
    for i, h in enumerate(headers):
        raw[i, : len(h)] = np.frombuffer(h, np.uint8)
    sequence, seconds, times = parse_columns(raw, None, tuple(mib_header._SHARED_FIELDS))
    assert sequence.tolist() == list(range(1, 13))
    np.testing.assert_array_equal(seconds, exposure)
    # a header that departs from frame 0's layout: no columns, the frame-by-frame parser names it
    raw[5, 11:16] = np.frombuffer(b"384,0", np.uint8)  # header size field shifted
    assert parse_columns(raw, None, tuple(mib_header._SHARED_FIELDS)) is None


def _headers(path) -> list[bytes]:
    layout = read_frame_headers(path, hdr_depth=None, timezone="UTC").layout
    data = np.fromfile(path, np.uint8).reshape(-1, layout.frame_size)
    return [row[: layout.header_size].tobytes() for row in data]


def _assert_columns_equal_rows(path):
    headers = _headers(path)
    first = mib_header._fields(headers[0])
    ext = mib_header._extension(first)
    raw = np.frombuffer(b"".join(headers), np.uint8).reshape(len(headers), -1)
    columns = parse_columns(raw, ext, tuple(mib_header._SHARED_FIELDS))
    assert columns is not None, path
    layout = read_frame_headers(path, hdr_depth=None, timezone="UTC").layout
    rows = mib_header._parse_rows(path, layout, headers, first, ext)
    for a, b in zip(columns, rows, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_file_maps_rewritten_and_cut_files_and_pickled_frames(tmp_path):
    planted = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16)
    path = write_mib(tmp_path / "ok.mib", planted, depth=12)
    ds = open_mib(path)
    (frames,) = [v for v in ds.counts.data.dask.values() if isinstance(v, MibFrames)]
    before = frames.read(np.arange(4))
    np.testing.assert_array_equal(before, planted)
    # one map per file, shared by every reader and kept for the next opening
    assert mib.file_map(str(path)) is mib.file_map(str(path))
    # pickled (a distributed worker): the copy reads the same
    copy = pickle.loads(pickle.dumps(frames))
    np.testing.assert_array_equal(copy.read(np.arange(4)), before)
    # the file rewritten (a new inode and mtime): a new opening reads the new frames
    write_mib(path, planted[::-1], depth=12)
    np.testing.assert_array_equal(open_mib(path).counts.values, planted[::-1])
    # and the older maps are dropped once MAX_MAPS others were used
    for i in range(mib.MAX_MAPS):
        mib.file_map(str(write_mib(tmp_path / f"other{i}.mib", planted[:1], depth=12)))
    assert all(key[0] != str(path) for key in mib._MAPS)
    # the file cut after opening: a clear error, not a SIGBUS from reading the map past its end
    frame = 384 + 16 * 16 * 2
    os.truncate(path, 2 * frame)
    with pytest.raises(FormatError, match=r"ok.mib: frames 0..3 .* beyond the end of the file"):
        frames.read(np.arange(4))
    np.testing.assert_array_equal(frames.read(np.arange(2)), planted[::-1][:2])


def _cut_copy(source, folder, frames_kept: int):
    """`source` (.mib + .hdr) copied into `folder`, the .mib cut after `frames_kept` frames."""
    frame_size = read_frame_headers(source, hdr_depth=None, timezone="UTC").layout.frame_size
    cut = folder / source.name
    cut.write_bytes(source.read_bytes()[: frames_kept * frame_size])
    hdr = source.with_suffix(".hdr")
    cut.with_suffix(".hdr").write_bytes(hdr.read_bytes())
    return cut


@pytest.mark.parametrize("kept", [8, 1])
def test_cut_at_a_frame_boundary_says_frames_are_missing(shared_data, tmp_path, kept):
    # the fuzzing run: a 9-frame file cut after 8 (or 1) whole frames opened silently;
    # its .hdr says "Frames in Acquisition: 9"
    source = shared_data / QUAD / "Single_9_Frame_CounterDepth_1_Rows_256RAW.mib"
    intact = open_mib(source).counts.values
    with pytest.warns(BeamcatWarning, match=rf"holds {kept} whole frames but .*announces 9"):
        ds = open_mib(_cut_copy(source, tmp_path, kept))
    assert ds.attrs["frames_expected"] == 9
    assert ds.attrs["frames_missing"] == 9 - kept
    # the whole frames, bit for bit the intact file's first ones
    np.testing.assert_array_equal(ds.counts.values, intact[:kept])


def test_cut_scan_is_not_reshaped_into_another_scan(shared_data, tmp_path):
    # a 4 x 2 scan (ScanX 4, ScanY 2 in its .hdr) cut in half held 4 frames and no word
    folder = shared_data / ROSETTA / "Merlin_navigation4x2_signalNx256_ROI"
    source = next(folder.glob("003_*.mib"))
    intact = open_mib(source).counts.values  # (2, 4, 64, 256)
    with pytest.warns(BeamcatWarning, match=r"holds 4 whole frames.*flat 'frame' stack"):
        ds = open_mib(_cut_copy(source, tmp_path, 4))
    assert ds.counts.dims == ("frame", "y", "x")
    assert ds.attrs["scan_shape_from"] == "none (incomplete)"
    assert (ds.attrs["frames_expected"], ds.attrs["frames_missing"]) == (8, 4)
    np.testing.assert_array_equal(ds.counts.values, intact[0])  # the first scan line, whole
    # asked for, the frames that are there take the shape the caller says
    with pytest.warns(BeamcatWarning, match=r"as scan_shape=\(1, 4\)"):
        line = open_mib(tmp_path / source.name, scan_shape=(1, 4))
    np.testing.assert_array_equal(line.counts.values, intact[:1])


def test_garbage_and_empty(tmp_path):
    garbage = tmp_path / "garbage.mib"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(
        FormatError, match="garbage.mib: byte offset 0: expected a MIB frame header"
    ):
        open_mib(garbage)
    empty = tmp_path / "empty.mib"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty.mib: empty file"):
        open_mib(empty)
    bad_size = tmp_path / "bad.mib"
    bad_size.write_bytes(b"MQ1,000001,abcde,01," + bytes(500))
    with pytest.raises(FormatError, match="header size"):
        open_mib(bad_size)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"MQ1,000002", b"XQ1,000002", "frame 1 at byte offset 896: expected 'MQ1,'"),
        (b",0016,0016,U16", b",0016,0016,U32", "frame 1 at byte offset 896: pixel type 'U32'"),
        (b"MQ1,000002", b"MQ1,000005", "frame 1 at byte offset 896: sequence number 5"),
    ],
)
def test_inconsistent_headers(tmp_path, old, new, match):
    path = _small(tmp_path)
    data = bytearray(path.read_bytes())
    frame = 384 + 16 * 16 * 2
    second = data[frame : frame + 384]
    assert old in second
    data[frame : frame + 384] = second.replace(old, new, 1)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=match):
        open_mib(path)


def test_old_header_without_mq1a_uses_timezone_and_hdr_depth(tmp_path):
    # Merlin < 0.67 headers: no MQ1A block; local PC time; U08 is 1 or 6 bit
    text = b"MQ1,000001,00384,01,0004,0002,U08,   1x1,01,2021-04-15 14:43:02.396481,0.001000,0,0,0,"
    path = tmp_path / "old.mib"
    path.write_bytes(text.ljust(384, b"\0") + bytes(range(8)))
    ds = open_mib(path, timezone="Europe/London")
    assert ds.time.values[0] == np.datetime64("2021-04-15T13:43:02.396481", "ns")  # BST = UTC+1
    assert ds.attrs["counter_depth"] == 6
    np.testing.assert_array_equal(ds.counts.values[0], np.arange(8).reshape(2, 4))
    assert ds.attrs["timezone"] == "Europe/London"
    (tmp_path / "old.hdr").write_text("HDR,\t\nCounter Depth (number):\t1\nEnd\t\n")
    with pytest.warns(BeamcatWarning, match=r"old\.mib: .*read as UTC"):  # no zone given
        utc = open_mib(path)
    assert utc.attrs["counter_depth"] == 1
    assert utc.attrs["timezone_assumed"] and utc.time.values[0] == np.datetime64(
        "2021-04-15T14:43:02.396481", "ns"
    )


# ---------------------------------------------------------------- laziness and chunking


def test_open_reads_no_pixels(shared_data, raise_if_dask_computes):
    with raise_if_dask_computes():
        ds = open_mib(shared_data / QUAD / "Quad_9_Frame_CounterDepth_6_Rows_256.mib")
        total = ds.counts.sum(("y", "x"))
    assert isinstance(total.data, da.Array)
    assert isinstance(ds.counts.data, da.Array)


@pytest.fixture(scope="module")
def sparse_mib(tmp_path_factory):
    """16384 frames of 256x256 12-bit (2.15 GB): only the headers are written, the rest is holes."""
    layout = FrameLayout(384, 1, 256, 256, "U16", "1x1", 12)
    n = 16384
    path = tmp_path_factory.mktemp("sparse") / "sparse.mib"
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    with open(path, "wb") as f:
        f.truncate(n * layout.frame_size)
        for i in range(n):
            f.seek(i * layout.frame_size)
            f.write(format_frame_header(layout, sequence=i + 1, time=start, exposure=0.001))
    return path, layout, n


def test_multi_gb_open_reads_headers_only(sparse_mib, monkeypatch, raise_if_dask_computes):
    path, layout, n = sparse_mib
    reads = []
    real_pread = os.pread

    def counting_pread(fd, size, offset):
        reads.append((offset, size))
        return real_pread(fd, size, offset)

    monkeypatch.setattr(mib_header.os, "pread", counting_pread)
    spans = []
    real_span = MibFrames._read_span

    def counting_span(self, file, first, count):
        spans.append((first, count))
        return real_span(self, file, first, count)

    monkeypatch.setattr(MibFrames, "_read_span", counting_span)
    t0 = time.perf_counter()
    with raise_if_dask_computes():
        ds = open_mib(path, flyback=False)
        total = ds.counts.sum(("y", "x"))
    elapsed = time.perf_counter() - t0
    assert elapsed < 5  # ~0.2 s measured; reading 2 GB would take many seconds
    assert ds.counts.shape == (128, 128, 256, 256)  # frame-count table, flyback=False
    assert ds.counts.nbytes == 2**31
    assert isinstance(total.data, da.Array)
    assert not spans  # no pixel read
    # every read lies inside one frame header: no payload byte was touched
    offsets = np.array(reads)
    assert len(offsets) <= n + 2
    assert np.all(offsets[:, 0] % layout.frame_size + offsets[:, 1] <= layout.header_size)
    # one frame asked for reads that frame alone (slicing fuses into the reader)
    assert int(ds.counts[70, 3].sum()) == 0
    assert spans == [(70 * 128 + 3, 1)]


def test_dataset_chunks_bounded(sparse_mib):
    path, _, _ = sparse_mib
    ds = open_mib(path, flyback=False)
    chunk = ds.counts.data.chunksize
    nbytes = np.prod(chunk) * 2
    assert 8 * 2**20 <= nbytes <= 32 * 2**20  # "auto" aims at 16 MiB
    assert chunk[1] == 128  # whole scan lines
    assert open_mib(path, flyback=False, chunks="128MiB").counts.data.chunksize[0] == 8


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    rng = np.random.default_rng(7)
    frames = _frames(rng, 35, (16, 24), 12)
    exposure = np.full(35, 0.001)
    exposure[[2, 9, 16, 23, 30]] = 0.02  # fly-back every 7 frames after 2 junk frames
    path = write_mib(tmp_path_factory.mktemp("mib") / "c.mib", frames, exposure=exposure)
    return path, frames


@settings(max_examples=20, deadline=None)
@given(chunks=st.one_of(st.integers(1, 40), st.sampled_from(["auto", "1KiB", "3KiB"])))
def test_chunking_gives_numpy_sums(small_scan, chunks):
    path, frames = small_scan
    expected = frames[2:30].reshape(4, 7, 16, 24)[:, 1:]  # flyback dropped, trailing frames cut
    ds = open_mib(path, chunks=chunks)
    assert ds.counts.shape == (4, 6, 16, 24)
    # integer sums are exact, whatever the chunking
    for axes in [("y", "x"), ("scan_y", "scan_x"), ("scan_x", "y")]:
        got = ds.counts.sum(axes).values
        np.testing.assert_array_equal(
            got, expected.sum(axis=tuple(ds.counts.dims.index(a) for a in axes))
        )
    stack = open_mib(path, chunks=chunks, flyback=False)
    np.testing.assert_array_equal(stack.counts.sum("frame").values, frames.sum(axis=0))


def test_bad_chunks(small_scan):
    with pytest.raises(OptionError, match="chunks"):
        open_mib(small_scan[0], chunks=0)


def test_fancy_selection_reads_right_frames(small_scan):
    path, frames = small_scan
    ds = open_mib(path, flyback=False)
    np.testing.assert_array_equal(ds.counts[[30, 2, 2, 17]].values, frames[[30, 2, 2, 17]])
    np.testing.assert_array_equal(ds.counts[5:30:6, 3, ::2].values, frames[5:30:6, 3, ::2])


def test_several_files_concatenate(tmp_path):
    rng = np.random.default_rng(3)
    a, b = _frames(rng, 4, (8, 8), 6), _frames(rng, 5, (8, 8), 6)
    write_mib(tmp_path / "run_1.mib", a, depth=6)
    write_mib(tmp_path / "run_2.mib", b, depth=6)
    ds = open_mib(tmp_path / "run_*.mib", chunks=3)
    np.testing.assert_array_equal(ds.counts.values, np.concatenate([a, b]))
    write_mib(tmp_path / "other.mib", a, depth=12)
    with pytest.raises(FormatError, match="frame layout"):
        open_mib([tmp_path / "run_1.mib", tmp_path / "other.mib"])


def test_hdr_path_opens_its_mib(shared_data):
    ds = open_mib(shared_data / QUAD / "Single_9_Frame_CounterDepth_6_Rows_256.hdr")
    assert ds.counts.shape == (9, 256, 256)
    assert ds.attrs["source"].endswith("Single_9_Frame_CounterDepth_6_Rows_256.mib")


def test_open_dataset_sniffs_mib(shared_data):
    ds = beamcat.open_dataset(shared_data / QUAD / "Single_1_Frame_CounterDepth_6_Rows_256.mib")
    assert ds.attrs["format"] == "mib"
    assert ds.attrs["signal"] == "counts"
    assert ds.counts.units == "counts"


@pytest.mark.parametrize("depth", [6, 12])
def test_raw_quad_writer_agrees_with_libertem(tmp_path, depth):
    # LiberTEM's RAW decoders are an independent implementation of the quad chip order
    # and pixel shuffles (its 1-bit RAW reader fails on real files in 0.16, hence 6/12
    # bit; 1x1 is left out as LiberTEM 0.16's numba read-range kernel then errors on a
    # later 2x2 dataset in the same process)
    pytest.importorskip("libertem")
    shape = (512, 512)
    from libertem.api import Context
    from libertem.udf.sum import SumUDF

    frames = _frames(np.random.default_rng(depth), 4, shape, depth)
    path = write_mib(tmp_path / "raw.mib", frames, depth=depth, raw=True, layout="2x2")
    ctx = Context.make_with("inline")
    dataset = ctx.load("mib", path=str(path), nav_shape=(2, 2))
    total = np.asarray(ctx.run_udf(dataset=dataset, udf=SumUDF())["intensity"].data)
    np.testing.assert_array_equal(total.astype(np.int64), frames.astype(np.int64).sum(axis=0))
