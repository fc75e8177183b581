"""The live pipeline and ``beamcat replay`` against the offline analyses, on real and demo data."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.accumulate import accumulate
from beamcat.analyses.detector import subtract_background, threshold
from beamcat.analyses.photon import clean_image, detect, histogram
from beamcat.catalog.cbor_stream import StreamEvent, replay, write_recording
from beamcat.catalog.demo import photon as demo_photon
from beamcat.cli import main
from beamcat.errors import BeamcatError, FormatError, OptionError
from beamcat.live import LivePipeline, run_replay
from beamcat.rois import save_rois

# on the LaB6 rings of the Pilatus frames, off them, and the whole frame (gaps: -1, -2)
ROIS = {"ring": (600, 300, 300, 200), "off": (100, 100, 200, 100), "all": (0, 0, 1475, 831)}
T0 = "2024-11-21T11:21:03"


@pytest.fixture(scope="module")
def recording(shared_data) -> Path:
    return shared_data / "drp_femtomax"


@pytest.fixture(scope="module")
def offline(recording):
    """The offline reader's frames: the reference the live numbers must equal."""
    return beamcat.open_dataset(recording)


@pytest.fixture(scope="module")
def real_run(recording):
    return run_replay(recording, rois=ROIS, progress=None)


@pytest.fixture(scope="module")
def real_events(recording):
    """The replayed events, decoded once for the tests that run several pipelines."""
    return list(replay(recording))


@pytest.fixture(scope="module")
def photon_scan(tmp_path_factory) -> Path:
    """The demo's ``femtomax_scan`` entry: make_demo writes the photon sample with this seed."""
    folder = tmp_path_factory.mktemp("demo") / "photon"
    demo_photon.write(folder, np.random.default_rng([0, 1]))  # index 1 of make_demo's samples
    return folder


def _synthetic(folder: Path, frames, **kwargs) -> list[Path]:
    return write_recording(
        folder, "scan", frames, energy=8048.0, exposure=0.01, start_time=T0, **kwargs
    )


# --------------------------------------------------------------------------- real recording


def test_real_recording_accumulates_its_30_frames(real_run, offline):
    view = real_run.pipeline.snapshot()
    assert view["count"] == view["frames"] == real_run.frames == 30
    assert view["pixel_size"] == pytest.approx(172e-6)
    reference = accumulate(offline.counts)["sum"].values
    frames = offline.counts.values.astype(np.float64)
    # float64 sums of float32 frames; the offline sum adds chunk partials in another order
    np.testing.assert_allclose(view["image"], reference, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(view["image"], frames.sum(axis=0), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(view["last"], frames[-1])


def test_real_recording_step_means_equal_the_accessor(real_run, offline):
    live = real_run.pipeline.snapshot()["step_table"]
    reference = offline.roi.step_means(ROIS).compute()
    assert live["roi"].values.tolist() == list(ROIS)
    assert live["dummy_mot_01"].values.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]  # burstscan 1 2 4
    assert live["count"].values.tolist() == [6] * 5
    # the same per-frame means (same kernel) grouped by the same function: rounding only
    for var in ("mean", "std"):
        np.testing.assert_allclose(live[var].values, reference[var].values, rtol=1e-12, atol=1e-15)


def test_real_recording_latency_is_measured_per_frame(real_run):
    # state only: how fast is a benchmark figure (benchmarks/live.py), not a pass/fail on a
    # shared machine; here every frame has one latency and the summary is consistent
    latency = real_run.pipeline.latency()
    assert latency["n"] == 30
    assert 0 < min(latency["median"], latency["last"])
    assert latency["median"] <= latency["p95"] <= latency["max"]
    assert latency["mean"] <= latency["max"]


def test_mask_negative_follows_the_originals_clip(real_events, offline):
    live = LivePipeline(rois=ROIS, mask_negative=True)
    for event in real_events:
        live.process(event)
    view = live.snapshot()
    clipped = offline.counts.clip(min=0)
    np.testing.assert_allclose(view["image"], accumulate(clipped)["sum"].values, rtol=1e-12)
    reference = clipped.roi.step_means(ROIS).compute()
    np.testing.assert_allclose(view["step_table"]["mean"], reference["mean"], rtol=1e-12)
    assert (view["image"] >= 0).all()  # the gaps (-1, -2 in every frame) add nothing


def test_snapshot_is_consistent_while_frames_arrive():
    # frame i is all (i + 1): an image of count n frames holds n (n + 1) / 2 everywhere
    live = LivePipeline(rois={"a": (0, 0, 4, 4)})
    seen = []

    def viewer():
        # until every frame is in and at least one view was taken (the adder may finish first)
        while live.frames < 200 or not seen:
            view = live.snapshot()
            if view["image"] is not None:
                seen.append((view["count"], np.unique(view["image"])))

    thread = threading.Thread(target=viewer)
    thread.start()
    for i in range(200):
        live.add(live.analyse(np.full((8, 8), i + 1.0), i), step=i)
    thread.join()
    assert seen
    for count, values in seen:
        assert values.tolist() == [count * (count + 1) / 2]


# --------------------------------------------------------------------------- modes


def test_cmos_mode_equals_background_and_threshold(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.normal(100, 6, (8, 32, 48)).clip(0).astype(np.uint16)
    frames[:, 10:13, 20:23] += np.uint16(40)
    paths = _synthetic(tmp_path, frames, motor={"theta": [1.0, 2.0]}, frames_per_point=4)
    rois = {"spot": (18, 8, 8, 8)}
    view = run_replay(paths, mode="cmos", rois=rois, progress=None).pipeline.snapshot()
    ds = beamcat.open_dataset(paths)
    processed = threshold(subtract_background(ds.counts, 100), 12)
    # float32 frames summed in float64 in another order: rounding only
    np.testing.assert_allclose(view["image"], accumulate(processed)["sum"].values, rtol=1e-12)
    reference = processed.roi.step_means(rois).compute()
    np.testing.assert_allclose(view["step_table"]["mean"], reference["mean"], rtol=1e-12)
    assert view["step_table"]["theta"].values.tolist() == [1.0, 2.0]


def test_photon_mode_equals_detect_and_clean_image(photon_scan):
    roi = demo_photon.ROI  # the Bragg spot's region, (x, y, w, h)
    rois = {"spot": roi}
    view = run_replay(
        photon_scan, mode="photon", energy_max=1400, rois=rois, progress=None
    ).pipeline.snapshot()
    ds = beamcat.open_dataset(photon_scan)
    events = detect(ds.counts, energy_max=1400).compute()
    assert view["count"] == 60 and view["events"] == events.sizes["event"]
    offline_clean = clean_image(events).values
    np.testing.assert_array_equal(view["clean_image"], offline_clean)  # integer counts: exact
    np.testing.assert_array_equal(view["image"], offline_clean)
    edges = np.linspace(1100, 3300, 101)
    np.testing.assert_array_equal(view["histogram"].values, histogram(events, edges).values)
    assert not view["density"]["dense"]

    # ROI mean of each frame's clean image = its events in the ROI / ROI pixels
    x0, y0, w, h = roi
    iy, ix = np.floor(events.y.values), np.floor(events.x.values)
    inside = (iy >= y0) & (iy < y0 + h) & (ix >= x0) & (ix < x0 + w)
    per_frame = np.bincount(events.frame.values[inside], minlength=60) / (w * h)
    steps = per_frame.reshape(10, 6)  # 10 theta steps x 6 frames
    table = view["step_table"]
    np.testing.assert_allclose(table["mean"].sel(roi="spot"), steps.mean(1), rtol=1e-12)
    np.testing.assert_allclose(table["std"].sel(roi="spot"), steps.std(1), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(table["theta"], demo_photon.POSITIONS)


def test_photon_events_equal_detect_variable_by_variable(photon_scan):
    live = run_replay(photon_scan, mode="photon", progress=None).pipeline
    events = live.events()
    reference = detect(beamcat.open_dataset(photon_scan).counts).compute()
    for name in reference.data_vars:
        np.testing.assert_array_equal(events[name].values, reference[name].values)
    assert events.attrs["frame_shape"] == [256, 256]


# --------------------------------------------------------------------------- control and bad input


def _event(frame, number, step=-1, motors=None) -> StreamEvent:
    return StreamEvent(number, np.datetime64("NaT"), "image", frame, number, step, motors or {})


def test_changing_frame_shape_resets_the_accumulation():
    live = LivePipeline(rois={"corner": (0, 0, 2, 2)})
    for i in range(3):
        live.process(_event(np.full((8, 8), 1.0), i))
    for i in range(3, 5):
        live.process(_event(np.full((6, 6), 2.0), i))
    view = live.snapshot()
    # the documented reset: the 6 x 6 frames start a new sum
    assert view["count"] == 2 and live.accumulator.resets == 1
    np.testing.assert_array_equal(view["image"], np.full((6, 6), 4.0))
    assert view["frames"] == 5  # ROI means go on: no motor, each frame is its own step
    assert view["step_table"]["mean"].values.tolist() == [[1.0, 1.0, 1.0, 2.0, 2.0]]

    with pytest.raises(OptionError, match="corner.*outside"):
        live.set_rois({"corner": (4, 4, 4, 4)})  # checked against the last (6 x 6) frame
    live = LivePipeline(rois={"far": (10, 10, 4, 4)})
    with pytest.raises(OptionError, match="far.*outside"):
        live.process(_event(np.zeros((8, 8)), 0))


def test_start_stop_reset_and_new_scan_keep_the_accumulation():
    live = LivePipeline(accumulate=False, rois={"a": (0, 0, 2, 2)})
    live.process(_event(np.ones((4, 4)), 0, step=0, motors={"m": 1.0}))
    assert live.snapshot()["count"] == 0  # not accumulating: only `last`
    live.start()
    for i in range(1, 4):
        live.process(_event(np.ones((4, 4)), i, step=0, motors={"m": 1.0}))
    live.stop()
    live.process(_event(np.ones((4, 4)), 4, step=1, motors={"m": 2.0}))
    assert live.snapshot()["count"] == 3
    live.new_scan()  # a new scan: the step table restarts, the accumulation carries over
    view = live.snapshot()
    assert view["step_table"] is None and view["frames"] == 0 and view["count"] == 3
    live.reset()
    assert live.snapshot()["image"] is None


def test_bad_options():
    with pytest.raises(OptionError, match="mode='pilatus'"):
        LivePipeline(mode="pilatus")
    live = LivePipeline(mode="photon", threshold=2000, energy_min=1100)
    with pytest.raises(OptionError, match="threshold"):
        live.analyse(np.zeros((16, 16), np.uint16))
    with pytest.raises(OptionError, match="one frame"):
        LivePipeline().analyse(np.zeros((2, 4, 4)))


def test_empty_recording_is_an_error(tmp_path, capsys):
    paths = _synthetic(tmp_path, np.zeros((0, 4, 4), np.uint16))
    with pytest.raises(FormatError, match="holds no image"):
        run_replay(paths, progress=None)
    assert main(["replay", str(paths[0]), "--no-progress"]) == 1
    assert "beamcat: error:" in capsys.readouterr().err
    empty = tmp_path / "empty.cbors"
    empty.write_bytes(b"")
    with pytest.raises(BeamcatError, match="empty"):
        run_replay(empty, progress=None)


def test_realtime_replay_keeps_the_recorded_pace(tmp_path):
    paths = _synthetic(tmp_path, np.ones((6, 4, 4), np.uint16), period=0.1)
    started = time.perf_counter()
    run_replay(paths, realtime=True, speed=2.0, progress=None)
    # 5 intervals of 0.1 s at twice the pace; sleeping never returns early
    assert time.perf_counter() - started >= 0.25


# --------------------------------------------------------------------------- CLI


def test_cli_replay_writes_its_results(recording, offline, tmp_path, capsys):
    rois = save_rois(ROIS, tmp_path / "rois.json")
    out = tmp_path / "out"
    assert main(["replay", str(recording), "--rois", str(rois), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "frames     30" in printed and "latency" in printed and "30 frames in" in printed
    acc = xr.open_zarr(out / "accumulated.zarr", consolidated=False)
    assert int(acc["count"]) == 30 and acc.attrs["pixel_size"] == pytest.approx(172e-6)
    np.testing.assert_allclose(acc["sum"], accumulate(offline.counts)["sum"], rtol=1e-12)
    assert sorted(p.name for p in out.glob("*.png")) == ["accumulated.png", "step_means.png"]
    steps = xr.open_zarr(out / "step_means.zarr", consolidated=False)
    np.testing.assert_allclose(
        steps["mean"], offline.roi.step_means(ROIS)["mean"], rtol=1e-12, atol=1e-15
    )
    assert main(["replay", str(recording), "--out", str(out), "--no-progress"]) == 1  # exists


def test_cli_replay_photon_list(photon_scan, tmp_path):
    out = tmp_path / "out"
    args = ["replay", str(photon_scan), "--mode", "photon", "--energy-max", "1400"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "accumulated.png",
        "accumulated.zarr",
        "clean_image.png",
        "energy_histogram.png",
        "photon.zarr",
        "scan_0007_andor3_balor_integrated.h5",
    ]
    hits = beamcat.open_dataset(out / written[-1]).compute()
    reference = detect(beamcat.open_dataset(photon_scan).counts, energy_max=1400).compute()
    np.testing.assert_array_equal(hits["energy"].values, reference["energy"].values)
    np.testing.assert_array_equal(hits["frame"].values, reference["frame"].values)
    clean = xr.open_zarr(out / "photon.zarr", consolidated=False)["clean_image"]
    assert int(clean.sum()) == reference.sizes["event"]
