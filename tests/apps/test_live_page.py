"""The live page without a browser: replays drawn from the pipeline, block display, alerts.

What the page shows is compared with the pipeline's snapshot and with the
offline analyses run on the same recording (`open_dataset` + ``ds.roi.step_means``,
a NumPy sum of the frames), so the page adds no arithmetic of its own; the block
display is compared with a NumPy reshape.
"""

from __future__ import annotations

import time

import holoviews as hv
import numpy as np
import pytest

import beamcat
from beamcat.apps.live_display import display_image
from beamcat.apps.live_page import LivePage
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.build import add_source
from beamcat.catalog.cbor_stream_write import write_recording
from beamcat.figures import block_reduce
from beamcat.rois import Rect

REAL_ROIS = {"ring": Rect(200, 360, 40, 40), "ring 2": Rect(40, 440, 40, 40)}
#: float32 frames summed in float64 by the accumulator vs float64 by NumPy: rounding only
RTOL = 1e-9


def _scatter(page, roi_index: int = 0):
    """The plotted points (x, mean) of one ROI in the step plot."""
    overlay = page.steps_pane.object
    scatter = [el for el in overlay if el.group == "Scatter"][roi_index]
    return scatter.dimension_values(0), scatter.dimension_values(1)


@pytest.fixture(scope="module")
def catalog(shared_data, tmp_path_factory):
    """The real FemtoMAX recording (both streams) as one entry, a small one and a broken one."""
    folder = tmp_path_factory.mktemp("live")
    cat = folder / "catalog.yaml"
    add_source(
        cat,
        "femtomax_lab6",
        sorted((shared_data / "drp_femtomax").iterdir()),
        format="cbor-stream",
    )
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 50, size=(12, 16, 24)).astype(np.uint16)
    small = write_recording(
        folder / "small",
        "scan_0001",
        frames,
        motor={"theta": [0.5, 1.5]},
        frames_per_point=6,
        energy=8048.0,
        exposure=0.1,
        start_time="2024-11-21T11:21:03",
        detector="pilatus",
    )
    add_source(cat, "small", small, format="cbor-stream")
    broken = folder / "broken.cbors"
    broken.write_bytes(b"\xd9\xa7\x7d not a recording")
    add_source(cat, "broken", broken, format="cbor-stream")
    return CatalogContext(cat), frames


@pytest.fixture
def live(catalog):
    live = LivePage(AppState(catalog[0]))
    live.realtime.value = False  # as fast as the recording is read
    return live


@pytest.fixture(scope="module")
def real(shared_data):
    return beamcat.open_dataset(shared_data / "drp_femtomax")


def test_replay_of_the_real_recording_equals_the_offline_analyses(catalog, real):
    page = LivePage(AppState(catalog[0]))
    page.source.value = "femtomax_lab6"
    assert page.shape == (831, 1475)  # from the entry's header, before any frame
    page.realtime.value = False
    page.roi_editor.set_rois(REAL_ROIS)
    assert page.start_replay() is not None
    page.wait()
    assert not page.alert.visible, page.alert.object

    view = page.view  # what the page drew is the pipeline's state
    now = page.pipeline.snapshot()
    assert view["count"] == now["count"] == 30 and view["frames"] == 30
    np.testing.assert_array_equal(view["image"], now["image"])
    assert "**30 frames** accumulated" in page.count.object

    # the offline analyses on the same frames: Pilatus gaps (< 0) as 0, the original's clip
    counts = real.counts.clip(min=0)
    np.testing.assert_allclose(view["image"], counts.astype("f8").sum("frame").values, rtol=RTOL)
    offline = counts.roi.step_means(REAL_ROIS).compute()
    table = view["step_table"]
    assert table["dummy_mot_01"].values.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert table["count"].values.tolist() == [6] * 5
    for name in ("mean", "std"):
        np.testing.assert_allclose(table[name].values, offline[name].values, rtol=RTOL)
    # the plot: one point per motor position and ROI, at the step means
    for r, roi in enumerate(REAL_ROIS):
        x, y = _scatter(page, r)
        assert x.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
        np.testing.assert_allclose(y, offline["mean"].sel(roi=roi).values, rtol=RTOL)
    assert page.steps_pane.object.label == "" and "dummy_mot_01" in str(
        page.steps_pane.object.opts.get().kwargs["title"]
    )
    # the displayed image: 831 x 1475 in blocks of 3 by their maximum
    assert page.shown.attrs["factor"] == 3 and page.shown.shape == (277, 492)
    padded = np.full((831, 1476), -np.inf)
    padded[:, :1475] = view["image"]
    expected = padded.reshape(277, 3, 492, 3).max(axis=(1, 3))
    np.testing.assert_array_equal(page.shown.values, expected)
    # drawn in detector pixels, row 0 on top: the brightest pixel's block is where it is
    drawn = page.image_pane.object[()].Image.I
    y, x = np.unravel_index(np.argmax(view["image"]), view["image"].shape)
    assert drawn[x + 0.5, y + 0.5] == expected.max()


def test_max_filter_keeps_a_single_hot_pixel():
    image = np.zeros((831, 1475))
    image[500, 700] = 1000.0
    shown = display_image(image, max_filter=True)
    assert shown.attrs["factor"] == 3
    assert shown.values.max() == 1000.0 and np.count_nonzero(shown.values) == 1
    # its block centre is within the block (1.5 px) of the hot pixel's centre
    iy, ix = np.unravel_index(shown.values.argmax(), shown.shape)
    assert abs(shown["y"].values[iy] - 500.5) <= 1 and abs(shown["x"].values[ix] - 700.5) <= 1
    # the mean dilutes it by the block's 9 pixels
    mean = display_image(image, max_filter=False)
    assert mean.values.max() == pytest.approx(1000.0 / 9, rel=1e-12)


def test_block_reduce_equals_numpy_reshape_with_partial_edge_blocks():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(10, 13))
    padded = np.full((12, 15), np.nan)
    padded[:10, :13] = image
    blocks = padded.reshape(4, 3, 5, 3)
    # the same values reduced by NumPy: exact for max, float64 rounding for the mean
    np.testing.assert_array_equal(block_reduce(image, 3), np.nanmax(blocks, axis=(1, 3)))
    np.testing.assert_allclose(
        block_reduce(image, 3, how="mean"), np.nanmean(blocks, axis=(1, 3)), rtol=1e-12
    )


def test_zoom_shows_a_roi_at_full_resolution(catalog):
    image = np.arange(831 * 1475, dtype=float).reshape(831, 1475)
    shown = display_image(image, region=Rect(200, 360, 40, 30))
    assert shown.attrs["factor"] == 1
    np.testing.assert_array_equal(shown.values, image[360:390, 200:240])
    assert shown["x"].values[0] == 200.5 and shown["y"].values[0] == 360.5


def test_start_stop_reset_and_carry_over(live, catalog):
    frames = catalog[1].astype(np.float64)
    live.source.value = "small"
    assert live.shape == (16, 24)
    live.start_replay()
    live.wait()
    assert live.view["count"] == 12
    live.start_replay()  # a second scan: the accumulated image carries over (the original's)
    live.wait()
    assert live.view["count"] == 24 and live.view["frames"] == 12
    np.testing.assert_array_equal(live.view["image"], 2 * frames.sum(0))

    live.pause_button.clicks += 1  # stop: frames are processed, not accumulated
    live.start_replay()
    live.wait()
    assert live.view["count"] == 24 and not live.view["running"] and live.view["frames"] == 12
    assert "(stopped)" in live.count.object

    live.reset_button.clicks += 1
    assert live.view["count"] == 0 and live.view["image"] is None
    live.start_button.clicks += 1
    live.start_replay()
    live.wait()
    assert live.view["count"] == 12
    np.testing.assert_array_equal(live.view["image"], frames.sum(0))


def test_stop_replay_ends_a_replay_at_the_recorded_rate(live):
    live.source.value = "small"
    live.realtime.value = True
    live.speed.value = 0.5  # 12 frames 0.1 s apart: 2.4 s when played whole
    replay = live.start_replay()
    assert live.start_replay() is None and "running" in live.note.object  # one at a time
    deadline = time.monotonic() + 120  # a state, polled: generous for a loaded machine
    while live.pipeline.frames == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # stop once the first frames have come
    live.stop_button.clicks += 1
    live.wait(timeout=120)
    assert replay.done and replay.stopped and replay.error is None
    assert 0 < live.view["frames"] < 12 and "replay stopped" in live.count.object
    assert live.stop_button.disabled


def test_rois_drawn_after_the_replay_start_a_new_step_table(live, catalog):
    frames = catalog[1].astype(np.float64)
    live.source.value = "small"
    live.start_replay()
    live.wait()
    assert live.view["step_table"] is None
    live.roi_editor._on_boxes({"x0": [2], "y0": [3], "x1": [10], "y1": [7], "name": [None]})
    assert list(live.roi_editor.rois) == ["ROI 1"] and live.zoom.options[-1] == "ROI 1"
    live.start_replay()
    live.wait()
    means = frames[:, 3:7, 2:10].mean(axis=(1, 2)).reshape(2, 6)
    x, y = _scatter(live)
    assert x.tolist() == [0.5, 1.5]
    np.testing.assert_allclose(y, means.mean(1), rtol=1e-12)  # float64 means of integers


def test_bad_choices_alert_and_leave_the_page_working(live, tmp_path):
    live.source.value = "broken"
    assert live.alert.visible and "broken.cbors" in live.alert.object
    live.start_replay()
    assert "broken.cbors" in live.alert.object and live.replay is None

    live.path.value = str(tmp_path / "nothing_here")
    live.start_replay()
    live.wait()
    assert "nothing_here" in live.alert.object

    live.path.value = ""
    live.source.value = "small"
    live.roi_editor.set_rois({"far": Rect(100, 100, 5, 5)})  # outside the 16 x 24 frames
    live.start_replay()
    live.wait()
    assert "far" in live.alert.object and live.view["frames"] == 0

    live.roi_editor.set_rois({"in": Rect(0, 0, 4, 4)})
    live.start_replay()
    live.wait()
    assert not live.alert.visible, live.alert.object
    assert live.view["count"] == 12


def test_photon_mode_shows_the_clean_image_and_histogram(tmp_path):
    # three frames on a 100 ADU background, each with one 3 x 3 photon of 1250 ADU
    frames = np.full((3, 20, 30), 100, np.uint16)
    for f, (y, x) in enumerate([(5, 5), (10, 20), (15, 12)]):
        frames[f, y - 1 : y + 2, x - 1 : x + 2] += 50
        frames[f, y, x] += 1250 - 9 * 50
    files = write_recording(
        tmp_path / "rec",
        "scan_0002",
        frames,
        energy=8048.0,
        exposure=0.1,
        start_time="2024-11-21T11:21:03",
        detector="andor3_balor",
    )
    cat = tmp_path / "catalog.yaml"
    add_source(cat, "photons", files, format="cbor-stream")
    page = LivePage(AppState(CatalogContext(cat)))
    page.realtime.value = False
    page.mode.value = "photon"
    assert page.clean_pane.visible and page.histogram_pane.visible
    page.start_replay()
    page.wait()
    assert not page.alert.visible, page.alert.object
    clean = page.view["clean_image"]
    assert clean.sum() == 3 and clean[5, 5] == clean[10, 20] == clean[15, 12] == 1
    histogram = page.histogram_pane.object
    bars = histogram.Histogram.I
    assert bars.dimension_values(1).sum() == 3  # three photons of 1250 ADU in (1100, 3300)
    (cut,) = [el for el in histogram if isinstance(el, hv.VLine)]  # labelled "energy_min = ..."
    assert cut.data == 1100.0  # the energy cut, marked
