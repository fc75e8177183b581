"""Recorded dranspose streams: the real FemtoMAX Pilatus + sardana recording, and written ones."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import time
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import dask.array as da
import numpy as np
import pytest

import beamcat
from beamcat.catalog import _cbor_frames, _cbor_items
from beamcat.catalog.cbor_stream import open_cbor_stream, replay, write_recording
from beamcat.errors import BeamcatWarning, FormatError, OptionError

DETECTOR = "pilatus_lab6pilatus-ingester-61591c49-9ac8-4cde-9b7e-ca7828b412fb.cbors.gz"
SARDANA = "pilatus_lab6sardana-ingester-61591c49-9ac8-4cde-9b7e-ca7828b412fb.cbors"
START = datetime(2024, 11, 21, 11, 21, 3, tzinfo=UTC)


# --- an independent reference: cbor2 decodes every item whole --------------------------------


def _cbor2_items(path: Path) -> list:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    f = io.BytesIO(data)  # cbor2 reads long byte strings in small pieces: slow from a GzipFile
    out = []
    while f.tell() < len(data):
        out.append(cbor2.load(f))
    return out


def _reference(decoded: list, stream: str):
    """Images (decoded from the raw payloads), their event numbers and times."""
    frames, events, times = [], [], []
    for item in decoded:
        event, streams, when = item.value
        typ, parts = streams[stream].value
        header = json.loads(parts[0])
        if header["htype"] == "image":
            frames.append(np.frombuffer(parts[1], header["type"]).reshape(header["shape"]))
            events.append(event)
            times.append(np.datetime64(when.replace(tzinfo=None), "ns"))
    return np.stack(frames), np.array(events), np.array(times)


@pytest.fixture(scope="module")
def real(request):
    data = request.getfixturevalue("shared_data") / "drp_femtomax"
    return data / DETECTOR, data / SARDANA


@pytest.fixture(scope="module")
def real_items(real):
    return _cbor2_items(real[0]), _cbor2_items(real[1])


@pytest.fixture(scope="module")
def reference(real_items):
    return _reference(real_items[0], "pilatus")


@pytest.fixture(scope="module")
def real_ds(real):
    return open_cbor_stream(list(real))


# --- the real recording -----------------------------------------------------------------------


def test_real_layout_and_header(real_ds):
    ds = real_ds
    assert ds.counts.shape == (30, 831, 1475)
    assert ds.counts.dtype == np.float32
    assert isinstance(ds.counts.data, da.Array)
    assert ds.attrs["signal"] == "counts" and ds.attrs["format"] == "cbor-stream"
    # PROVENANCE.md: header extra JSON {"energy":8048,"threshold":0,"save_raw":true,"exptime":0.05}
    assert ds.attrs["energy"] == 8048.0
    assert ds.attrs["exposure"] == 0.05
    assert ds.attrs["threshold"] == 0
    assert ds.attrs["save_raw"] == 1
    assert ds.attrs["filename"].endswith("scan-123374_pilatus.h5")
    assert ds.attrs["detector"] == "pilatus"
    assert ds.attrs["pixel_size"] == 172e-6  # Pilatus pitch, from the stream name
    assert ds.attrs["scan_title"] == "burstscan dummy_mot_01 1.0 2.0 4 6"
    assert ds.attrs["scan_number"] == 123374
    assert ds.attrs["motors"] == ["dummy_mot_01"]
    np.testing.assert_array_equal(ds.frame, np.arange(30))
    np.testing.assert_array_equal(ds.event_number, np.arange(1, 31))


def test_real_values_match_a_cbor2_decode(real_ds, reference):
    frames, _, _ = reference
    values = real_ds.counts.values
    np.testing.assert_array_equal(values, frames)  # same bytes: exact
    # PROVENANCE.md: min -2.0, max 342.3 (float32), 0.35 % of pixels > 0, 8.8 % < 0
    assert values.min() == -2.0
    assert values.max() == np.float32(342.3)
    assert abs((values > 0).mean() - 0.0035) < 0.0005
    assert abs((values < 0).mean() - 0.088) < 0.001


def test_real_times_are_utc_and_increasing(real_ds, reference):
    _, events, times = reference
    np.testing.assert_array_equal(real_ds.event_number, events)
    np.testing.assert_array_equal(real_ds.time, times)  # recorded with "Z": UTC as is
    assert real_ds.time.dtype == np.dtype("datetime64[ns]")
    assert str(real_ds.time.values[0]) == "2024-11-21T11:21:03.813447000"
    assert (np.diff(real_ds.time.values) > np.timedelta64(0)).all()


def test_real_motor_position_of_every_frame(real_ds, real_items):
    # burstscan dummy_mot_01 1.0 2.0 4 6: five points 1.0 .. 2.0, six frames each
    expected = np.repeat([1.0, 1.25, 1.5, 1.75, 2.0], 6)
    np.testing.assert_array_equal(real_ds.dummy_mot_01, expected)
    np.testing.assert_array_equal(real_ds.step, np.repeat(np.arange(5), 6))
    # the semantics: a point's six frames were all received before its RecordData, and the
    # next point's frames after it (the motor moves in between)
    records = [i.value for i in real_items[1]]
    records = [(r[2], r[1]["sardana"].value[1][0]) for r in records]
    record_times = [
        np.datetime64(t.replace(tzinfo=None), "ns") for t, raw in records if b"RecordData" in raw
    ]
    frame_times = real_ds.time.values.reshape(5, 6)
    for point, when in enumerate(record_times):
        assert (frame_times[point] < when).all()
        if point + 1 < 5:
            assert (frame_times[point + 1] > when).all()


def test_detector_file_alone_has_no_motor(real, reference):
    alone = open_cbor_stream(real[0], chunks=1)
    assert "dummy_mot_01" not in alone.coords
    np.testing.assert_array_equal(alone.step, np.full(30, -1))
    assert "scan_title" not in alone.attrs
    np.testing.assert_array_equal(alone.counts[12].values, reference[0][12])


def test_open_dataset_sniffs_cbor_stream(real):
    ds = beamcat.open_dataset(list(real))
    assert ds.attrs["format"] == "cbor-stream" and ds.sizes["frame"] == 30


def test_real_replay_yields_frames_in_order_with_motors(real, reference):
    frames, events, times = reference
    got = list(replay(list(real)))
    assert [e.kind for e in got] == ["header"] + ["image"] * 30 + ["series_end"]
    assert [e.event_number for e in got] == list(range(32))
    images = [e for e in got if e.kind == "image"]
    assert [e.frame_number for e in images] == list(range(30))
    np.testing.assert_array_equal([e.time for e in images], times)
    for e, frame in zip(images, frames, strict=True):
        np.testing.assert_array_equal(e.frame, frame)
    np.testing.assert_array_equal(
        [e.motors["dummy_mot_01"] for e in images], np.repeat([1.0, 1.25, 1.5, 1.75, 2.0], 6)
    )
    assert [e.step for e in images] == list(np.repeat(np.arange(5), 6))
    assert images[0].header["energy"] == 8048.0


def test_real_open_is_lazy(real, raise_if_dask_computes):
    with raise_if_dask_computes():
        ds = open_cbor_stream(list(real), chunks=4)
        picked = ds.counts.isel(frame=slice(3, 9)).sum("frame")
    assert isinstance(picked.data, da.Array)
    assert ds.counts.data.chunks[0] == (4,) * 7 + (2,)


# --- written recordings -----------------------------------------------------------------------


def _frames(n=10, shape=(24, 32), dtype=np.float32, seed=0):
    """Sparse single-photon-like frames: a few hits of ~1200 on a zero background."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, *shape), dtype)
    for f in frames:
        hits = rng.integers(0, shape[0] * shape[1], 6)
        f.flat[hits] = rng.normal(1200, 40, hits.size).astype(dtype)
    return frames


def _write(tmp_path, frames=None, **kw):
    frames = _frames() if frames is None else frames
    options = dict(energy=930.0, exposure=0.01, start_time=START)
    options.update(kw)
    return frames, write_recording(tmp_path, "scan_7", frames, **options)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_write_round_trip(tmp_path, gz, dtype):
    frames = _frames(dtype=dtype)
    motor = {"dummy_mot_01": [0.0, 0.5, 1.0]}
    _, paths = _write(tmp_path, frames, motor=motor, frames_per_point=4, gzip=gz)
    assert paths[0].name.endswith(".cbors.gz" if gz else ".cbors")
    assert paths[1].name.endswith(
        "sardana-ingester-" + paths[0].name.split("-ingester-")[1].split(".")[0] + ".cbors"
    )
    ds = open_cbor_stream(paths)
    assert ds.counts.dtype == dtype
    np.testing.assert_array_equal(ds.counts.values, frames)  # lossless: exact
    # 10 frames at 4 per point: points of 4, 4 and 2 frames
    np.testing.assert_array_equal(ds.step, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(ds.dummy_mot_01, [0.0] * 4 + [0.5] * 4 + [1.0] * 2)
    assert ds.attrs["energy"] == 930.0 and ds.attrs["exposure"] == 0.01
    assert ds.attrs["pixel_size"] == 12e-6  # the default detector, balor
    expected = np.datetime64("2024-11-21T11:21:03", "ns") + np.arange(1, 11) * np.timedelta64(
        10, "ms"
    )
    np.testing.assert_array_equal(ds.time, expected)


def test_written_file_matches_real_layout(tmp_path, real_items):
    """Item by item, a written recording has the real one's tags, parts and JSON keys."""
    _, paths = _write(tmp_path, motor={"m": [0.0, 1.0, 2.0]}, frames_per_point=4)

    def layout(decoded):
        out = []
        for item in decoded:
            _, streams, when = item.value
            ((_, data),) = streams.items()
            typ, parts = data.value
            heads = [sorted(json.loads(p)) for p in parts[:2] if p[:1] == b"{"]
            out.append((item.tag, data.tag, typ, len(parts), heads, when.tzinfo == UTC))
        return out

    written, original = layout(_cbor2_items(paths[0])), layout(real_items[0])
    assert written[:2] == original[:2]  # series header, first image
    assert written[-1] == original[-1]  # series end
    assert len(written) == 12 and len(set(map(str, written[1:-1]))) == 1
    sardana, original = layout(_cbor2_items(paths[1])), layout(real_items[1])
    assert {s[:4] for s in sardana} == {o[:4] for o in original} == {(42877, 42878, "sardana", 1)}
    packets = [json.loads(i.value[1]["sardana"].value[1][0]) for i in _cbor2_items(paths[1])]
    assert [p["type"] for p in packets] == ["DataDescription"] + ["RecordData"] * 3 + ["RecordEnd"]
    real_description = json.loads(real_items[1][0].value[1]["sardana"].value[1][0])
    needed = {"type", "serialno", "title", "ref_moveables", "column_desc", "scandir"}
    assert needed <= set(packets[0]) & set(real_description)
    assert [i.value[0] for i in _cbor2_items(paths[1])] == [0, 4, 8, 10, 11]


@pytest.mark.parametrize("compression", ["bslz4", "lz4"])
def test_compressed_payloads_round_trip(tmp_path, compression):
    pytest.importorskip("bitshuffle" if compression == "bslz4" else "lz4")
    frames, paths = _write(tmp_path, compression=compression, gzip=False)
    ds = open_cbor_stream(paths)
    np.testing.assert_array_equal(ds.counts.values, frames)
    # the payloads really are compressed: sparse frames shrink well below their raw size
    assert paths[0].stat().st_size < frames.nbytes / 4


def test_bslz4_is_the_hdf5_bitshuffle_chunk_format(tmp_path):
    """Dectris bslz4 = a bitshuffle-LZ4 HDF5 chunk (12-byte header); h5py's filter writes one."""
    bitshuffle_h5 = pytest.importorskip("bitshuffle.h5")
    h5py = pytest.importorskip("h5py")
    frame = (np.arange(48 * 40).reshape(48, 40) % 7).astype(np.uint16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        opts = (0, bitshuffle_h5.H5_COMPRESS_LZ4)
        f.create_dataset(
            "x",
            data=frame,
            chunks=frame.shape,
            compression=bitshuffle_h5.H5FILTER,
            compression_opts=opts,
        )
        _, chunk = f["x"].id.read_direct_chunk((0, 0))
    header = {"shape": [48, 40], "type": "uint16", "compression": "bslz4"}
    np.testing.assert_array_equal(_cbor_items.decode_frame(chunk, header), frame)
    assert _cbor_items.encode_frame(frame, "bslz4") == chunk


@pytest.mark.parametrize("chunks", [1, 3, 4, 10, 25])
def test_any_chunking_gives_the_same_frames(tmp_path, chunks):
    frames, paths = _write(tmp_path)
    ds = open_cbor_stream(paths, chunks=chunks)
    assert ds.counts.data.chunks[0][0] == min(chunks, 10)
    np.testing.assert_array_equal(ds.counts.values, frames)
    np.testing.assert_array_equal(ds.counts[2:9:3, 5:, :7].values, frames[2:9:3, 5:, :7])


def test_a_frame_reads_only_its_chunk(tmp_path, monkeypatch):
    frames, paths = _write(tmp_path)
    ds = open_cbor_stream(paths, chunks=3)
    read = []
    real_frame = _cbor_frames.Reader.frame

    def counting(self, message, out=None):
        read.append(message.header["frame"])
        return real_frame(self, message, out)

    monkeypatch.setattr(_cbor_frames.Reader, "frame", counting)
    np.testing.assert_array_equal(ds.counts[7].values, frames[7])
    assert sorted(read) == [6, 7, 8]


def test_pickled_dataset_still_reads(tmp_path):
    # what a dask.distributed worker gets: the graph with the index, gzip seek points included
    frames, paths = _write(tmp_path, motor={"m": [0.0, 1.0, 2.0]}, frames_per_point=4)
    ds = pickle.loads(pickle.dumps(open_cbor_stream(paths, chunks=4)))
    np.testing.assert_array_equal(ds.counts.values, frames)


def test_naive_recorded_times_read_in_timezone(tmp_path):
    header = b'{"htype": "header", "msg_number": 0, "filename": "x.h5"}'
    naive = cbor2.CBORTag(0, "2024-11-21T12:21:03.5")  # Stockholm local time, UTC+1 in November
    items = [(0, [header]), (1, [_image_header([1, 2]), b"\x01\x00\x02\x00"])]
    path = tmp_path / "naive.cbors"
    path.write_bytes(b"".join(_message(e, "zyla", "STINS", parts, naive) for e, parts in items))
    with pytest.warns(BeamcatWarning, match="no series_end"):  # two items, no series end
        ds = open_cbor_stream(path, timezone="Europe/Stockholm")
    assert ds.time.values[0] == np.datetime64("2024-11-21T11:21:03.5", "ns")


def test_gzip_without_indexed_gzip(tmp_path, monkeypatch):
    frames, paths = _write(tmp_path, gzip=True)
    monkeypatch.setattr(_cbor_items, "indexed_gzip", None)
    ds = open_cbor_stream(paths, chunks=3)
    np.testing.assert_array_equal(ds.counts.values, frames)


def _split_items(path: Path) -> list[bytes]:
    """The raw bytes of each item of a plain CBOR sequence."""
    data = path.read_bytes()
    f = io.BytesIO(data)
    cuts = [0]
    while f.tell() < len(data):
        cbor2.load(f)
        cuts.append(f.tell())
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def test_several_detector_files_join_by_event_number(tmp_path):
    frames, paths = _write(tmp_path, gzip=False, motor={"m": [1.0, 2.0]}, frames_per_point=5)
    parts = _split_items(paths[0])
    first, second = tmp_path / "b_part1.cbors", tmp_path / "a_part2.cbors"
    first.write_bytes(b"".join(parts[:6]))
    second.write_bytes(b"".join(parts[6:]))
    ds = open_cbor_stream([second, paths[1], first])  # any order: events sort them
    np.testing.assert_array_equal(ds.counts.values, frames)
    np.testing.assert_array_equal(ds.event_number, np.arange(1, 11))
    np.testing.assert_array_equal(ds.m, [1.0] * 5 + [2.0] * 5)
    with pytest.raises(FormatError, match="event 6 of stream 'balor' recorded twice"):
        open_cbor_stream([second, paths[0]])


def test_replay_realtime_keeps_the_recorded_pace(tmp_path):
    _, paths = _write(tmp_path, exposure=0.05)  # images 50 ms apart, series end with the last
    began = time.monotonic()
    events = list(replay(paths, realtime=True, speed=2.0))
    elapsed = time.monotonic() - began
    # header -> last image spans 10 x 50 ms = 0.5 s recorded, 0.25 s at speed 2; the sleep
    # never undershoots, and 0.2 s of slack covers reading and decoding ten small frames
    assert 0.25 <= elapsed < 0.45
    assert [e.kind for e in events] == ["header"] + ["image"] * 10 + ["series_end"]
    began = time.monotonic()
    list(replay(paths))
    assert time.monotonic() - began < 0.2
    with pytest.raises(OptionError, match="speed"):
        next(replay(paths, speed=0))


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("indexed", [True, False])
def test_truncated_gzip_names_file_and_item(tmp_path, monkeypatch, indexed):
    if not indexed:
        monkeypatch.setattr(_cbor_items, "indexed_gzip", None)
    _, paths = _write(tmp_path, frames=_frames(shape=(200, 300)))
    data = paths[0].read_bytes()
    cut = tmp_path / "cut.cbors.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FormatError, match=r"cut\.cbors\.gz: item \d+ at byte \d+ .*truncated"):
        open_cbor_stream(cut)
    # only the gzip trailer missing: every item decompresses, the end-of-stream check catches it
    cut.write_bytes(data[:-8])
    with pytest.raises(FormatError, match=r"cut\.cbors\.gz: .*truncated"):
        open_cbor_stream(cut)


def test_truncated_cbor_names_file_and_item(tmp_path):
    _, paths = _write(tmp_path, gzip=False)
    parts = _split_items(paths[0])
    cut = tmp_path / "cut.cbors"
    cut.write_bytes(b"".join(parts[:4]) + parts[4][: len(parts[4]) // 2])
    with pytest.raises(FormatError, match=r"cut\.cbors: item 4 at byte \d+ is truncated"):
        open_cbor_stream(cut)


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n", bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64],
)
def test_non_cbor_file(tmp_path, content):
    path = tmp_path / "junk.cbors"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=r"junk\.cbors: item 0 at byte 0"):
        open_cbor_stream(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.cbors"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty.cbors: empty file"):
        open_cbor_stream(path)


def test_two_series_in_one_stream(tmp_path):
    _, paths = _write(tmp_path, gzip=False)
    parts = _split_items(paths[0])
    twice = tmp_path / "twice.cbors"
    twice.write_bytes(b"".join(parts[:3]) + parts[0])
    with pytest.raises(FormatError, match="event 0 of stream 'balor' recorded twice"):
        open_cbor_stream(twice)
    _, streams, when = cbor2.loads(parts[0]).value  # the series header, moved to event 3
    again = cbor2.CBORTag(55799, cbor2.CBORTag(42877, [3, streams, when]))
    twice.write_bytes(b"".join(parts[:3]) + cbor2.dumps(again))
    with pytest.raises(FormatError, match=r"holds 2 series .*item 3 \(event 3\)"):
        open_cbor_stream(twice)


def test_stream_without_header_item(tmp_path):
    _, paths = _write(tmp_path, gzip=False)
    headless = tmp_path / "headless.cbors"
    headless.write_bytes(b"".join(_split_items(paths[0])[1:]))
    with pytest.raises(FormatError, match=r"headless\.cbors: stream 'balor' has no series header"):
        open_cbor_stream(headless)


def _message(event, stream, typ, parts, when=START):
    data = cbor2.CBORTag(42878, [typ, parts])
    return cbor2.dumps(cbor2.CBORTag(55799, cbor2.CBORTag(42877, [event, {stream: data}, when])))


def _image_header(shape, compression="none") -> bytes:
    header = {"htype": "image", "msg_number": 1, "frame": 0, "shape": shape, "type": "uint16"}
    return json.dumps({**header, "compression": compression}).encode()


def test_unsupported_compression_is_named_at_open(tmp_path):
    header = b'{"htype": "header", "msg_number": 0, "filename": "x.h5"}'
    image = _image_header([2, 2], "jpeg")
    path = tmp_path / "odd.cbors"
    path.write_bytes(
        _message(0, "zyla", "STINS", [header]) + _message(1, "zyla", "STINS", [image, b"x" * 8])
    )
    with pytest.raises(
        FormatError, match=r"odd\.cbors: item 1 \(event 1\): compression 'jpeg' not supported"
    ):
        open_cbor_stream(path)


def test_wrong_payload_size_and_shape_mismatch(tmp_path):
    header = b'{"htype": "header", "msg_number": 0, "filename": "x.h5"}'
    image = _image_header([2, 2])
    path = tmp_path / "short.cbors"
    path.write_bytes(
        _message(0, "zyla", "STINS", [header]) + _message(1, "zyla", "STINS", [image, b"x" * 6])
    )
    with pytest.raises(FormatError, match=r"short\.cbors: item 1 \(event 1\): payload has 6 bytes"):
        open_cbor_stream(path)
    other = image.replace(b"[2, 2]", b"[1, 4]")
    path.write_bytes(
        _message(0, "zyla", "STINS", [header])
        + _message(1, "zyla", "STINS", [image, b"x" * 8])
        + _message(2, "zyla", "STINS", [other, b"x" * 8])
    )
    with pytest.raises(FormatError, match=r"item 2 \(event 2\): image is \(\(1, 4\)"):
        open_cbor_stream(path)


def test_stream_choice(tmp_path):
    header = b'{"htype": "header", "msg_number": 0, "filename": "x.h5"}'
    image = _image_header([1, 2])
    path = tmp_path / "two.cbors"
    path.write_bytes(
        b"".join(
            _message(e, name, "STINS", parts)
            for name in ("andor3_zyla10", "andor3_balor")
            for e, parts in [(0, [header]), (1, [image, b"\x01\x00\x02\x00"])]
        )
    )
    with pytest.raises(OptionError, match="several detector streams"):
        open_cbor_stream(path)
    with pytest.raises(OptionError, match="stream='pilatus'"):
        open_cbor_stream(path, stream="pilatus")
    with pytest.warns(BeamcatWarning, match="no series_end"):  # two items, no series end
        ds = open_cbor_stream(path, stream="andor3_zyla10")
    np.testing.assert_array_equal(ds.counts.values, [[[1, 2]]])
    assert ds.attrs["pixel_size"] == 6.5e-6  # Zyla pitch from the stream name


def test_write_recording_checks_its_options(tmp_path):
    with pytest.raises(OptionError, match="frames_per_point"):
        _write(tmp_path, motor={"m": [0.0]})
    with pytest.raises(
        OptionError, match="motor 'm' has 2 positions; 10 frames at 4 per point make 3"
    ):
        _write(tmp_path, motor={"m": [0.0, 1.0]}, frames_per_point=4)
    with pytest.raises(OptionError, match="expected \\(frame, y, x\\)"):
        _write(tmp_path, frames=np.zeros((4, 4)))
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


# --- cut or inconsistent recordings: fail, or open what is whole and say what is missing ------


def test_detector_stream_cut_after_an_item_says_so(tmp_path):
    # the fuzzing run: a stream cut between items opened with fewer frames and no word
    frames, paths = _write(tmp_path, gzip=False)
    parts = _split_items(paths[0])  # header, 10 images, series_end
    cut = tmp_path / "cut.cbors"
    cut.write_bytes(b"".join(parts[:7]))  # the header and 6 whole images
    with pytest.warns(BeamcatWarning, match=r"cut\.cbors: stream 'balor' has no series_end"):
        ds = open_cbor_stream(cut)
    assert ds.attrs["series_end"] == 0
    np.testing.assert_array_equal(ds.counts.values, frames[:6])  # the whole ones, unchanged
    with pytest.warns(BeamcatWarning, match="no series_end"):
        assert [e.kind for e in replay(cut)] == ["header"] + ["image"] * 6
    assert "series_end" not in open_cbor_stream(paths[0]).attrs  # a whole one says nothing


def test_sardana_stream_with_only_its_header_says_frames_lack_positions(real, tmp_path):
    # the fuzzing run: 30 frames without motor positions and no warning
    parts = _split_items(real[1])  # DataDescription, 5 RecordData, RecordEnd
    header_only = tmp_path / "sardana.cbors"
    header_only.write_bytes(parts[0])
    with pytest.warns(BeamcatWarning, match=r"30 of 30 frames come after .* last RecordData"):
        ds = open_cbor_stream([real[0], header_only])
    assert ds.attrs["frames_without_position"] == 30
    assert np.isnan(ds.dummy_mot_01).all() and (ds.step == -1).all()


def _sardana_packets(path: Path) -> list:
    return [cbor2.loads(item) for item in _split_items(path)]


def test_sardana_record_without_type_is_an_error_not_a_shift(real, tmp_path):
    # the fuzzing run: the first record dropped gave frames 1-6 the second point's 1.25
    decoded = _sardana_packets(real[1])
    event, streams, when = decoded[1].value  # cbor2 drops tag 55799: tag 42877
    typ, (packet,) = streams["sardana"].value
    record = json.loads(packet)
    assert record["type"] == "RecordData" and record["dummy_mot_01"] == 1.0
    del record["type"]
    streams["sardana"] = cbor2.CBORTag(42878, [typ, [json.dumps(record).encode()]])
    decoded[1] = cbor2.CBORTag(55799, cbor2.CBORTag(42877, [event, streams, when]))
    bad = tmp_path / "sardana.cbors"
    bad.write_bytes(b"".join(cbor2.dumps(item) for item in decoded))
    with pytest.raises(FormatError, match=r"sardana\.cbors: item 1 \(event 6\): sardana packet"):
        open_cbor_stream([real[0], bad])


def test_image_under_an_unknown_htype_is_an_error_not_a_lost_frame(tmp_path):
    header = b'{"htype": "header", "msg_number": 0, "filename": "x.h5"}'
    odd = _image_header([1, 2]).replace(b'"htype": "image"', b'"htype": "imagf"')
    path = tmp_path / "odd.cbors"
    path.write_bytes(
        _message(0, "zyla", "STINS", [header])
        + _message(1, "zyla", "STINS", [_image_header([1, 2]), b"\x01\x00\x02\x00"])
        + _message(2, "zyla", "STINS", [odd, b"\x03\x00\x04\x00"])
    )
    with pytest.raises(FormatError, match=r"odd\.cbors: item 2 \(event 2\): htype 'imagf'"):
        open_cbor_stream(path)
