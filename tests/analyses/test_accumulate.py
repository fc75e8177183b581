"""Accumulation: lazy sum and running sum vs NumPy, the live Accumulator, the real recording."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamcat
from beamcat.analyses.accumulate import Accumulator, accumulate, running_sum, sum_dtype
from beamcat.catalog.cbor_stream import replay, write_recording
from beamcat.errors import FormatError, OptionError

# float64 sums of float32 frames in another order than NumPy's pairwise sum: relative
# error ~n * 1e-16 for n <= 30 frames; 1e-12 leaves room and still catches a lost frame
RTOL = 1e-12


def _frames(data, chunks=None) -> xr.DataArray:
    data = da.from_array(data, chunks=chunks) if chunks else data
    return xr.DataArray(data, dims=("frame", "y", "x"), attrs={"pixel_size": 12e-6})


@pytest.fixture(scope="module")
def pilatus_like():
    """Float32 photon-counting frames with -1 / -2 gap and defect pixels and a NaN."""
    rng = np.random.default_rng(7)
    data = rng.poisson(0.3, (9, 20, 30)).astype(np.float32) * np.float32(1.1)
    data[:, 5, :] = -1  # a gap row, -1 in every frame like the Pilatus module gaps
    data[:, :, 7] = -2  # a defect column
    data[4, 10, 10] = np.nan
    return data


@pytest.fixture(scope="module")
def real(shared_data):
    return beamcat.open_dataset(shared_data / "drp_femtomax")


@pytest.fixture(scope="module")
def real_frames(real):
    return real.counts.values


# ------------------------------------------------------------------- offline sum


def test_integer_frames_sum_exactly_in_int64():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 65535, (40, 8, 9), dtype=np.uint16)
    out = accumulate(_frames(data, chunks=(7, 8, 9)))
    assert out["sum"].dtype == np.int64 and int(out["count"]) == 40
    # exact: 40 * 65535 overflows uint16 but not int64
    np.testing.assert_array_equal(out["sum"].values, data.astype(np.int64).sum(axis=0))
    assert out.attrs["pixel_size"] == 12e-6 and out.attrs["signal"] == "sum"
    assert "accumulate: 40 frames" in out.attrs["history"]


def test_float_frames_add_every_value_like_the_original(pilatus_like):
    out = accumulate(_frames(pilatus_like, chunks=(4, 20, 30))).compute()
    reference = pilatus_like.astype(np.float64).sum(axis=0)  # the original's img + img + ...
    assert out["sum"].dtype == np.float64
    np.testing.assert_allclose(out["sum"].values, reference, rtol=RTOL)
    assert out["sum"].values[5, 0] == -9.0  # gaps accumulate: -1 in 9 frames
    assert np.isnan(out["sum"].values[10, 10])  # NaN stays NaN, as np.add does


def test_mask_negative_adds_zero_for_gaps_and_nan(pilatus_like):
    out = accumulate(_frames(pilatus_like, chunks=(2, 10, 30)), mask_negative=True).compute()
    clipped = np.nan_to_num(pilatus_like.astype(np.float64), nan=0.0).clip(min=0)
    np.testing.assert_allclose(out["sum"].values, clipped.sum(axis=0), rtol=RTOL)
    assert out["sum"].values[5].max() == 0 and out["sum"].values[:, 7].max() == 0


def test_numpy_backed_frames_give_numpy_results(pilatus_like):
    out = accumulate(_frames(pilatus_like))
    assert isinstance(out["sum"].data, np.ndarray)
    np.testing.assert_allclose(
        out["sum"].values, pilatus_like.astype(np.float64).sum(axis=0), rtol=RTOL
    )


def test_accumulate_and_running_sum_are_lazy(pilatus_like, raise_if_dask_computes):
    frames = _frames(pilatus_like, chunks=(3, 20, 30))
    with raise_if_dask_computes():
        total = accumulate(frames, mask_negative=True)
        running = running_sum(frames)
    assert isinstance(total["sum"].data, da.Array) and isinstance(running["sum"].data, da.Array)


def test_the_sum_is_a_tree_of_per_chunk_partial_sums():
    # 10 frame chunks: memory bounded by a chunk, every chunk read once (chunk/combine)
    frames = _frames(np.ones((50, 4, 4), np.uint8), chunks=(5, 4, 4))
    graph = dict(accumulate(frames)["sum"].data.__dask_graph__())
    partials = [k for k in graph if isinstance(k, tuple) and "sum" in str(k[0])]
    assert len(partials) >= 10
    assert int(accumulate(frames)["sum"].max()) == 50


# tiles of at least 4 x 6 pixels: smaller ones only add tasks (a 1 x 1 tiling is 5400 chunks)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame_chunk=st.integers(1, 9),
    y_chunk=st.integers(4, 20),
    x_chunk=st.integers(6, 30),
    mask=st.booleans(),
)
def test_any_chunking_gives_the_numpy_sum(pilatus_like, frame_chunk, y_chunk, x_chunk, mask):
    data = pilatus_like
    frames = _frames(data, chunks=(frame_chunk, y_chunk, x_chunk))
    reference = data.astype(np.float64)
    if mask:
        reference = np.nan_to_num(reference, nan=0.0).clip(min=0)
    with dask.config.set(scheduler="synchronous"):
        total = accumulate(frames, mask_negative=mask)["sum"].values
        running = running_sum(frames, mask_negative=mask)["sum"].values
    np.testing.assert_allclose(total, reference.sum(axis=0), rtol=RTOL)
    np.testing.assert_allclose(running, np.cumsum(reference, axis=0), rtol=RTOL)


def test_running_sum_after_every_frame():
    data = np.arange(5 * 2 * 3, dtype=np.int16).reshape(5, 2, 3) - 10
    frames = _frames(data, chunks=(2, 2, 3)).assign_coords(frame=[10, 11, 12, 13, 14])
    out = running_sum(frames)
    np.testing.assert_array_equal(out["sum"].values, np.cumsum(data.astype(np.int64), axis=0))
    assert out["count"].values.tolist() == [1, 2, 3, 4, 5]
    assert out["frame"].values.tolist() == [10, 11, 12, 13, 14]  # coordinates kept


def test_sum_dtypes():
    assert sum_dtype(np.uint16) == np.int64 and sum_dtype(bool) == np.int64
    assert sum_dtype(np.float32) == np.float64 and sum_dtype(np.uint64) == np.uint64
    with pytest.raises(OptionError, match="dtype <U3 cannot be accumulated"):
        sum_dtype(np.dtype("U3"))


def test_bad_input_is_named():
    with pytest.raises(OptionError, match="no frames along 'frame'"):
        accumulate(_frames(np.zeros((0, 4, 4), np.float32)))
    with pytest.raises(OptionError, match="with a 'frame' dim"):
        accumulate(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")))
    with pytest.raises(OptionError, match="with a 'time' dim"):
        running_sum(np.zeros((2, 2, 2)), dim="time")


def test_an_empty_recording_fails_at_open(tmp_path):
    paths = write_recording(
        tmp_path,
        "empty",
        np.zeros((0, 4, 5), np.uint16),
        energy=8000,
        exposure=0.1,
        start_time="2024-01-01T00:00:00",
        gzip=False,
    )
    with pytest.raises(FormatError, match="holds no image"):
        beamcat.open_dataset(paths)


# ------------------------------------------------------------------- live Accumulator


def test_accumulator_start_stop_reset(pilatus_like):
    acc = Accumulator(pixel_size=172e-6)
    assert acc.add(pilatus_like[0]) is False and acc.count == 0 and acc.image is None
    np.testing.assert_array_equal(acc.last, pilatus_like[0])  # offered, not added
    acc.start()
    for frame in pilatus_like[:4]:
        assert acc.add(frame)
    acc.stop()
    assert acc.add(pilatus_like[4]) is False and acc.count == 4  # paused: the sum stays
    acc.start()
    for frame in pilatus_like[5:]:
        acc.add(frame)
    kept = np.delete(pilatus_like, 4, axis=0).astype(np.float64)
    np.testing.assert_allclose(acc.image, kept.sum(axis=0), rtol=RTOL)
    assert acc.count == 8 and acc.resets == 0
    acc.reset()
    assert acc.count == 0 and acc.image is None and acc.running
    acc.add(pilatus_like[0])
    assert acc.count == 1


def test_accumulator_equals_offline_accumulate(pilatus_like):
    acc = Accumulator(running=True, mask_negative=True, pixel_size=12e-6)
    for frame in pilatus_like:
        acc.add(frame)
    live = acc.to_dataset()
    offline = accumulate(_frames(pilatus_like, chunks=(4, 20, 30)), mask_negative=True)
    np.testing.assert_allclose(live["sum"].values, offline["sum"].values, rtol=RTOL)
    assert int(live["count"]) == int(offline["count"]) == 9
    assert live.attrs["pixel_size"] == offline.attrs["pixel_size"] == 12e-6


def test_accumulator_resets_on_shape_crop_or_pixel_size():
    acc = Accumulator(running=True)
    acc.add(np.ones((4, 4), np.uint16))
    acc.add(np.ones((4, 4), np.uint16))
    assert acc.count == 2
    acc.add(np.full((3, 4), 5, np.uint16))  # new shape: starts again from this frame
    assert acc.count == 1 and acc.image.tolist() == [[5] * 4] * 3 and acc.resets == 1
    acc.add(np.ones((3, 4), np.uint16), crop=(10, 0, 2, 0))  # same shape, new crop
    assert acc.count == 1 and acc.crop == (10, 0, 2, 0) and acc.resets == 2
    acc.add(np.ones((3, 4), np.uint16), crop=[10, 0, 2, 0])  # same crop as a list
    assert acc.count == 2
    detector = xr.DataArray(np.ones((3, 4)), dims=("y", "x"), attrs={"pixel_size": 6.5e-6})
    acc.add(detector, crop=(10, 0, 2, 0))  # another detector (pixel size): a new sum
    assert acc.count == 1 and acc.pixel_size == 6.5e-6 and acc.resets == 3


def test_accumulator_promotes_float_frames_after_integer_ones():
    acc = Accumulator(running=True)
    acc.add(np.full((2, 2), 3, np.uint16))
    acc.add(np.full((2, 2), 0.5, np.float32))
    assert acc.image.dtype == np.float64 and acc.image.tolist() == [[3.5, 3.5]] * 2


def test_accumulator_keeps_its_sum_across_scans(tmp_path):
    # the original keeps it in context["prev_accumulator"]: a second scan adds on
    acc = Accumulator(running=True)
    scans = [np.full((3, 2, 2), i + 1, np.uint16) for i in range(2)]
    for scan in scans:
        for frame in scan:
            acc.add(frame)
    assert acc.count == 6 and acc.image.tolist() == [[9, 9], [9, 9]]


def test_accumulator_is_thread_safe():
    acc = Accumulator(running=True)
    frame = np.ones((64, 64), np.int32)
    seen = []

    def adder():
        for _ in range(300):
            acc.add(frame)

    def reader():
        for _ in range(300):
            image, count = acc.snapshot()
            if image is not None:
                seen.append(int(image[0, 0]) == count == int(image[-1, -1]))

    threads = [threading.Thread(target=f) for f in (adder, adder, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acc.count == 600 and int(acc.image.sum()) == 600 * 64 * 64  # no lost update
    assert all(seen)  # every snapshot is one consistent state


def test_accumulator_bad_input():
    acc = Accumulator(running=True)
    with pytest.raises(OptionError, match="no frame accumulated yet"):
        acc.to_dataset()
    with pytest.raises(OptionError, match=r"expected one frame \(y, x\), got shape \(2, 2, 2\)"):
        acc.add(np.zeros((2, 2, 2)))


# ------------------------------------------------------------------- real recording


def test_real_recording_accumulates_30_frames(real, real_frames):
    out = real.accumulate.total()
    assert int(out["count"]) == 30
    assert out.attrs["pixel_size"] == 172e-6 and out.attrs["energy"] == 8048.0
    np.testing.assert_allclose(
        out["sum"].values, real_frames.astype(np.float64).sum(axis=0), rtol=RTOL
    )


def test_real_replay_through_the_accumulator_equals_offline(shared_data, real_frames):
    acc = Accumulator(pixel_size=172e-6, running=True)
    images = [ev for ev in replay(shared_data / "drp_femtomax") if ev.kind == "image"]
    counts = [acc.count for ev in images if acc.add(ev.frame)]
    assert counts == list(range(1, 31))  # one frame added per image event
    np.testing.assert_allclose(acc.image, real_frames.astype(np.float64).sum(axis=0), rtol=RTOL)
