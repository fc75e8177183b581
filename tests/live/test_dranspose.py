"""beamcat's dranspose worker and reducer replayed on recordings, against the offline analyses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("dranspose", reason="dranspose (beamcat's optional extra 'live') not installed")

import dranspose.replay as dranspose_replay  # noqa: E402

import beamcat  # noqa: E402
from beamcat.analyses.accumulate import accumulate  # noqa: E402
from beamcat.analyses.photon import clean_image, detect, histogram  # noqa: E402
from beamcat.catalog.cbor_stream import write_recording  # noqa: E402
from beamcat.catalog.demo import photon as demo_photon  # noqa: E402
from beamcat.errors import OptionError  # noqa: E402
from beamcat.live.dranspose_reducer import BeamcatReducer  # noqa: E402
from beamcat.live.dranspose_worker import pipeline_options  # noqa: E402
from beamcat.live.pipeline import FrameResult  # noqa: E402

WORKER = "beamcat.live.dranspose_worker:BeamcatWorker"
REDUCER = "beamcat.live.dranspose_reducer:BeamcatReducer"
ROIS = {"ring": [600, 300, 300, 200], "off": [100, 100, 200, 100]}


def _check_cbor2() -> None:
    """dranspose 0.2 reads recordings with cbor2 5's API: say so instead of a decode error."""
    from importlib.metadata import version

    if int(version("cbor2").split(".")[0]) >= 6:
        pytest.fail(
            f"dranspose 0.2 cannot read recordings with cbor2 {version('cbor2')}: the extra "
            "'live' needs cbor2<6 (tag_hook signature, CBORDecodeEOF no longer an EOFError)"
        )


def _parameters(path: Path, **values) -> Path:
    """A dranspose parameter file: a JSON list of {"name", "data"}."""
    path.write_text(json.dumps([{"name": k, "data": str(v)} for k, v in values.items()]))
    return path


def _replay(files, parameters: Path) -> BeamcatReducer:
    """dranspose's own replay (2 workers, the first event broadcast), in this process."""
    _check_cbor2()
    dranspose_replay.replay(WORKER, REDUCER, [str(f) for f in files], None, str(parameters))
    return dranspose_replay.reducer


@pytest.fixture(scope="module")
def files(shared_data) -> list[Path]:
    return sorted((shared_data / "drp_femtomax").iterdir())


@pytest.fixture(scope="module")
def offline(files):
    return beamcat.open_dataset(files)


def _check_step_means(step_means: dict, offline, rois) -> None:
    reference = offline.roi.step_means(rois).compute()
    for roi in rois:
        published = step_means[roi]
        # the same per-frame means grouped by the same function: rounding only
        np.testing.assert_allclose(published["y"], reference["mean"].sel(roi=roi), rtol=1e-12)
        np.testing.assert_allclose(
            published["y_errors"], reference["std"].sel(roi=roi), rtol=1e-12, atol=1e-15
        )
        assert published["x"].tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
        assert step_means[f"{roi}_attrs"]["NX_class"] == "NXdata"


def test_reducer_publishes_the_offline_numbers(files, offline, tmp_path):
    reducer = _replay(files, _parameters(tmp_path / "p.json", rois=json.dumps(ROIS)))
    published = reducer.publish
    assert published["accumulated_number"] == published["frames"] == 30
    assert published["pixel_size"] == pytest.approx(172e-6)
    # float64 sums of float32 frames in another order than the offline tree: rounding only
    reference = accumulate(offline.counts)["sum"].values
    np.testing.assert_allclose(published["image"], reference, rtol=1e-12, atol=1e-9)
    _check_step_means(published["step_means"], offline, ROIS)


def test_dranspose_replay_command_on_the_real_recording(files, offline, tmp_path):
    out = tmp_path / "results"
    parameters = _parameters(tmp_path / "p.json", rois=json.dumps(ROIS), out=out)
    _check_cbor2()
    command = Path(sys.executable).with_name("dranspose")
    args = [str(command), "replay", "-w", WORKER, "-r", REDUCER, "-f", *map(str, files)]
    run = subprocess.run(
        [*args, "-p", str(parameters)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "failed" not in run.stderr, run.stderr[-2000:]  # dranspose logs finish errors only
    acc = xr.open_zarr(out / "accumulated.zarr", consolidated=False)
    assert int(acc["count"]) == 30
    np.testing.assert_allclose(acc["sum"], accumulate(offline.counts)["sum"], rtol=1e-12)
    steps = xr.open_zarr(out / "step_means.zarr", consolidated=False).compute()
    published = {
        roi: {"y": steps["mean"].sel(roi=roi).values, "x": steps["dummy_mot_01"].values}
        | {"y_errors": steps["std"].sel(roi=roi).values}
        for roi in ROIS
    } | {f"{roi}_attrs": {"NX_class": "NXdata"} for roi in ROIS}
    _check_step_means(published, offline, ROIS)


def test_photon_mode_on_compressed_frames(tmp_path):
    # 12 frames of the demo photon scan, as lz4-compressed Stream1 payloads (decoded by
    # beamcat, not by dranspose's parser), with their motor stream
    source = tmp_path / "demo"
    demo_photon.write(source, np.random.default_rng([0, 1]))
    frames = beamcat.open_dataset(source).counts[:12].values
    files = write_recording(
        tmp_path / "lz4",
        "scan",
        frames,
        motor={"theta": [10.0, 10.1]},
        frames_per_point=6,
        energy=8048.0,
        exposure=0.1,
        start_time="2024-11-21T11:21:03",
        detector="andor3_balor",
        compression="lz4",
    )
    roi = list(demo_photon.ROI)
    reducer = _replay(
        files,
        _parameters(
            tmp_path / "p.json", mode="photon", energy_max=1400, rois=json.dumps({"spot": roi})
        ),
    )
    published = reducer.publish
    events = detect(beamcat.open_dataset(files).counts, energy_max=1400).compute()
    assert published["events"] == events.sizes["event"] > 0
    np.testing.assert_array_equal(published["clean_image"], clean_image(events).values)
    np.testing.assert_array_equal(published["image"], clean_image(events).values)
    expected = histogram(events, np.linspace(1100, 3300, 101)).values
    np.testing.assert_array_equal(published["histogram"]["y"], expected)
    assert published["step_means"]["spot"]["x"].tolist() == [10.0, 10.1]
    assert published["pixel_size"] == pytest.approx(12e-6)  # Balor, from the stream name


def test_without_motor_stream_each_frame_is_a_step(files, tmp_path):
    frames = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 4, 6), np.float32)
    paths = write_recording(
        tmp_path, "scan", frames, energy=1.0, exposure=0.1, start_time="2024-01-01T00:00:00"
    )
    reducer = _replay(paths, _parameters(tmp_path / "p.json", rois=json.dumps([[0, 0, 2, 2]])))
    published = reducer.publish["step_means"]["ROI 1"]
    assert published["x"].tolist() == [0, 1, 2, 3, 4]  # the frame numbers
    assert published["y"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_reducer_counts_a_broadcast_frame_once():
    reducer = BeamcatReducer(parameters={}, context={})
    frame = FrameResult(0, np.ones((2, 2)))
    for _ in range(2):  # dranspose sends the first event to every worker
        reducer.process_result(SimpleNamespace(event_number=1, payload={"frame": frame}))
    assert reducer.publish["accumulated_number"] == 1


def test_accumulation_carries_over_to_the_next_scan():
    context = {}
    first = BeamcatReducer(parameters={}, context=context)
    first.process_result(
        SimpleNamespace(event_number=1, payload={"frame": FrameResult(0, 1.0 * np.ones((2, 2)))})
    )
    second = BeamcatReducer(parameters={}, context=context)
    second.process_result(
        SimpleNamespace(event_number=1, payload={"frame": FrameResult(0, 2.0 * np.ones((2, 2)))})
    )
    assert second.publish["accumulated_number"] == 2
    np.testing.assert_array_equal(second.publish["image"], np.full((2, 2), 3.0))


def test_bad_parameters():
    with pytest.raises(OptionError, match="rois"):
        pipeline_options({"rois": SimpleNamespace(value="{not json")})
    with pytest.raises(OptionError, match="threshold"):
        pipeline_options({"threshold": SimpleNamespace(value="high")})
    assert pipeline_options({"energy_max": SimpleNamespace(value=0.0)})["energy_max"] is None


def test_worker_and_reducer_import_no_plotting_or_page():
    # a fresh interpreter: what importing the dranspose classes loads, not what this run has
    code = (
        "import sys, beamcat.live.dranspose_worker, beamcat.live.dranspose_reducer\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'matplotlib', 'panel', 'bokeh', 'holoviews'})\n"
        "bad += sorted(m for m in sys.modules if m.startswith('beamcat.apps'))\n"
        "print(','.join(bad))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""
