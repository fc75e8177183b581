"""ROI step means vs drp-femtomax's reducer loop, laziness, chunking, StepMeans live, real scan."""

from __future__ import annotations

import io
import json

import cbor2
import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamcat
from beamcat.analyses.roi import roi_means
from beamcat.analyses.steps import StepMeans, step_means
from beamcat.catalog.cbor_stream import replay
from beamcat.errors import OptionError
from beamcat.rois import Rect

# means of <= 10 float64 values summed in another order than np.mean's: ~1e-16 relative;
# std of near-equal values loses a few more digits; 1e-10 still catches any wrong frame
RTOL = 1e-10


def original_step_means(values, movable_positions: dict) -> tuple[list, list, list]:
    """drp-femtomax ``CmosReducer._update_rois``: the step of the record that arrived at
    frame ``pos`` averages ``roi_means[last:pos + 1]`` (np.mean, np.std)."""
    y, y_errors, x = [], [], []
    last = 0
    for pos in movable_positions:  # arrival order
        use = values[last : pos + 1]
        y.append(np.mean(use))
        y_errors.append(np.std(use))
        x.append(movable_positions[pos])
        last = pos + 1
    return y, y_errors, x


def _means(values, steps, theta, chunks=None) -> xr.DataArray:
    values = np.asarray(values, np.float64)
    data = da.from_array(values, chunks=chunks) if chunks else values
    n = values.shape[-1]
    return xr.DataArray(
        data,
        dims=("roi", "frame"),
        coords={
            "roi": [f"ROI {i + 1}" for i in range(values.shape[0])],
            "frame": np.arange(n),
            "step": ("frame", np.asarray(steps)),
            "theta": ("frame", np.asarray(theta, np.float64), {"units": "deg"}),
            "time": ("frame", np.datetime64("2024-11-21T11:00:00", "ns") + np.arange(n) * 10**8),
        },
        attrs={"units": "counts", "source": "synthetic"},
    )


@pytest.fixture(scope="module")
def scan():
    """3 ROIs, 4 points of 5 frames (the last point 3 frames), then 2 frames after the last
    record (step -1), like a burstscan cut short."""
    rng = np.random.default_rng(11)
    steps = np.repeat([0, 1, 2, 3, -1], [5, 5, 5, 3, 2])
    theta = np.where(steps >= 0, 10.0 + 0.5 * steps, np.nan)
    values = rng.normal(50.0, 4.0, (3, steps.size)) + 10 * np.maximum(steps, 0)
    return values, steps, theta


def test_step_means_equal_the_original_reducer_loop(scan):
    values, steps, theta = scan
    out = step_means(_means(values, steps, theta))
    # the reducer's records: one at the last frame of each point
    records = {int(np.nonzero(steps == s)[0][-1]): 10.0 + 0.5 * s for s in range(4)}
    for r in range(3):
        y, y_err, x = original_step_means(values[r], records)
        np.testing.assert_allclose(out["mean"].values[r], y, rtol=RTOL)
        np.testing.assert_allclose(out["std"].values[r], y_err, rtol=RTOL)
        np.testing.assert_array_equal(out["theta"].values, x)
    assert out["step"].values.tolist() == [0, 1, 2, 3]
    assert out["count"].values.tolist() == [5, 5, 5, 3]  # the 2 frames after the last record: out
    assert out["mean"].dims == ("roi", "step") and out.attrs["signal"] == "mean"
    assert out["mean"].attrs["units"] == "counts" and out["theta"].attrs["units"] == "deg"
    assert "time" not in out.coords  # not constant within a step
    assert "step_means: 4 steps of 18 frames" in out.attrs["history"]


def test_a_dataset_of_roi_means_keeps_roi_coordinates():
    rng = np.random.default_rng(2)
    frames = xr.DataArray(rng.normal(5, 1, (6, 10, 12)), dims=("frame", "y", "x"))
    frames = frames.assign_coords(step=("frame", [0, 0, 0, 1, 1, 1]))
    out = step_means(roi_means(frames, {"a": Rect(1, 2, 4, 3)}))
    reference = frames.values[:, 2:5, 1:5].mean(axis=(1, 2))
    np.testing.assert_allclose(out["mean"].values[0], [reference[:3].mean(), reference[3:].mean()])
    np.testing.assert_allclose(out["std"].values[0], [reference[:3].std(), reference[3:].std()])
    assert out["roi_w"].values.tolist() == [4]


def test_without_motor_every_frame_is_its_own_step(scan):
    values, steps, theta = scan
    means = _means(values, steps, theta).drop_vars("step")
    out = step_means(means)
    np.testing.assert_array_equal(out["mean"].values, values)  # the original plots vs frame
    assert (out["std"].values == 0).all() and (out["count"].values == 1).all()
    assert out["step"].values.tolist() == list(range(values.shape[1]))
    assert out["time"].dims == ("step",)  # each frame's coordinates carried
    # a recording opened without its motor stream: step -1 everywhere, same rule
    no_motor = means.assign_coords(step=("frame", np.full(values.shape[1], -1)))
    xr.testing.assert_identical(step_means(no_motor)["mean"], out["mean"])


def test_nan_frame_makes_its_step_nan_like_np_mean(scan):
    values, steps, theta = scan
    values = values.copy()
    values[1, 6] = np.nan
    out = step_means(_means(values, steps, theta))
    assert np.isnan(out["mean"].values[1, 1]) and np.isnan(out["std"].values[1, 1])
    assert np.isfinite(out["mean"].values[1, [0, 2, 3]]).all()
    assert np.isfinite(out["mean"].values[[0, 2], 1]).all()


def test_explicit_motor_and_a_moving_motor():
    values = np.array([[1.0, 2.0, 3.0, 4.0]])
    moving = _means(values, [0, 0, 1, 1], [1.0, 1.5, 2.0, 2.5])  # a continuous scan
    out = step_means(moving, motor="theta")
    np.testing.assert_allclose(out["theta"].values, [1.25, 2.25])  # mean position per step
    assert "theta" not in step_means(moving).coords  # by default: constant coordinates only
    assert list(step_means(moving, motor=["theta"]).coords) == ["roi", "step", "theta"]


def test_bad_input_is_named(scan):
    values, steps, theta = scan
    means = _means(values, steps, theta)
    with pytest.raises(OptionError, match=r"motor='phi': not a coordinate along 'frame'.*theta"):
        step_means(means, motor="phi")
    with pytest.raises(OptionError, match="no 'step' coordinate with scan points"):
        step_means(means.drop_vars("step"), motor="theta")
    with pytest.raises(OptionError, match="expected per-frame means along 'frame'"):
        step_means(means.isel(frame=slice(0, 0)))
    with pytest.raises(OptionError, match="expected per-frame means along 'time'"):
        step_means(means, dim="time")
    with pytest.raises(OptionError, match="no variable 'mean' of per-frame means"):
        step_means(xr.Dataset({"other": means}))
    with pytest.raises(OptionError, match="expected ROI means"):
        step_means(values)


def test_step_means_are_lazy(scan, raise_if_dask_computes):
    values, steps, theta = scan
    with raise_if_dask_computes():
        out = step_means(_means(values, steps, theta, chunks=(2, 4)))
    assert isinstance(out["mean"].data, da.Array) and isinstance(out["std"].data, da.Array)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roi_chunk=st.integers(1, 3), frame_chunk=st.integers(1, 20))
def test_any_chunking_gives_the_same_numbers(scan, roi_chunk, frame_chunk):
    values, steps, theta = scan
    reference = step_means(_means(values, steps, theta))
    with dask.config.set(scheduler="synchronous"):
        out = step_means(_means(values, steps, theta, chunks=(roi_chunk, frame_chunk))).compute()
    xr.testing.assert_allclose(out, reference, rtol=RTOL)


# ------------------------------------------------------------------- live StepMeans


def _feed(live: StepMeans, values, steps, theta) -> None:
    for i, step in enumerate(steps):
        means = {f"ROI {r + 1}": values[r, i] for r in range(values.shape[0])}
        live.add(means, step=int(step), motors={"theta": theta[i]})


def test_live_step_means_equal_offline(scan):
    values, steps, theta = scan
    live = StepMeans()
    _feed(live, values, steps, theta)
    assert live.count == 18  # the 2 frames with step -1 are not recorded
    offline = step_means(_means(values, steps, theta))
    table = live.to_dataset()
    for name in ("mean", "std", "count", "theta"):
        np.testing.assert_allclose(table[name].values, offline[name].values, rtol=RTOL)


def test_live_table_grows_point_by_point(scan):
    values, steps, theta = scan
    live = StepMeans()
    _feed(live, values[:, :7], steps[:7], theta[:7])  # the second point has 2 of 5 frames
    table = live.to_dataset()
    assert table["count"].values.tolist() == [5, 2]
    np.testing.assert_allclose(table["mean"].values[:, 1], values[:, 5:7].mean(axis=1))


def test_live_resets_on_a_new_roi_set_and_takes_dataarrays():
    live = StepMeans()
    live.add({"a": 1.0, "b": 2.0}, step=0)
    live.add({"a": 3.0, "b": 4.0}, step=0)
    assert live.add({"a": 9.0}, step=-1) is False and live.count == 2
    live.add({"a": 5.0}, step=0)  # ROI "b" deleted: a new table
    assert live.count == 1 and live.to_dataset()["roi"].values.tolist() == ["a"]
    frame = xr.DataArray([7.0], dims="roi", coords={"roi": ["a"]})
    live.add(frame, step=1)
    assert live.to_dataset()["mean"].values.tolist() == [[5.0, 7.0]]
    live.reset()
    with pytest.raises(OptionError, match="no frame recorded yet"):
        live.to_dataset()


# ------------------------------------------------------------------- real recording

REAL_ROIS = {"ring": Rect(200, 360, 40, 40), "ring 2": Rect(40, 440, 40, 40)}


@pytest.fixture(scope="module")
def real(shared_data):
    return beamcat.open_dataset(shared_data / "drp_femtomax")


@pytest.fixture(scope="module")
def real_events(shared_data):
    return [ev for ev in replay(shared_data / "drp_femtomax") if ev.kind == "image"]


def _sardana_records(shared_data) -> dict[int, float]:
    """event number -> dummy_mot_01 of each RecordData, decoded with cbor2 alone."""
    (path,) = (shared_data / "drp_femtomax").glob("*sardana*.cbors")
    data = path.read_bytes()
    stream = io.BytesIO(data)
    records = {}
    while stream.tell() < len(data):
        event, streams, _ = cbor2.load(stream).value
        message = json.loads(streams["sardana"].value[1][0])
        if message["type"] == "RecordData":
            records[event] = message["dummy_mot_01"]
    return records


def test_real_scan_has_one_point_per_motor_position(real, real_events, shared_data):
    # the original's pipeline: ROI mean = crop.clip(min=0).mean() (worker), then the
    # reducer's loop over the sardana records, keyed by the detector frame of their event
    out = real.counts.clip(min=0).roi.step_means(REAL_ROIS).compute()
    assert out["dummy_mot_01"].values.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert out["count"].values.tolist() == [6] * 5
    frame_of_event = {ev.event_number: ev.frame_number for ev in real_events}
    records = {frame_of_event[e]: pos for e, pos in _sardana_records(shared_data).items()}
    frames = np.stack([ev.frame for ev in real_events]).clip(min=0)
    for r, (x, y, w, h) in enumerate(REAL_ROIS.values()):
        per_frame = frames[:, y : y + h, x : x + w].mean(axis=(1, 2), dtype=np.float64)
        mean, std, positions = original_step_means(per_frame, records)
        np.testing.assert_allclose(out["mean"].values[r], mean, rtol=RTOL)
        np.testing.assert_allclose(out["std"].values[r], std, rtol=RTOL)
        assert positions == out["dummy_mot_01"].values.tolist()
    assert (out["mean"].values > 0.1).all()  # the ROIs hold LaB6 ring photons


def test_real_replay_into_step_means_equals_offline(real, real_events):
    live = StepMeans()
    for ev in real_events:
        frame = xr.DataArray(ev.frame[None], dims=("frame", "y", "x"))
        means = roi_means(frame, REAL_ROIS)["mean"].isel(frame=0).compute()
        live.add(means, step=ev.step, motors=ev.motors)
    offline = real.roi.step_means(REAL_ROIS).compute()
    table = live.to_dataset()
    for name in ("mean", "std", "count", "dummy_mot_01"):
        np.testing.assert_allclose(table[name].values, offline[name].values, rtol=RTOL)
