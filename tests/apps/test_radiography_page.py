"""The radiography rpage's objects without a browser, on the demo catalog.

Each check compares what the rpage shows with the analyses run independently on
the same entries (`calibrate`, `roi_means`, `grid_means`, `difference`,
`beer_lambert`), so the rpage adds no arithmetic of its own.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from beamcat.analyses.calibration import calibrate
from beamcat.analyses.difference import difference
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.analyses.roi import grid_means, roi_means
from beamcat.analyses.timeseries import beer_lambert, normalise
from beamcat.apps.radiography_page import RadiographyPage
from beamcat.apps.roi_editor import rois_from_boxes
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.demo import CATALOG_NAME, read_truth
from beamcat.rois import Rect

ROIS = {"bed_top": Rect(134, 75, 52, 30), "air": Rect(10, 10, 60, 60)}


def _curve(rpage, label, plot=-1):
    """The curve of `label` in one plot of the curves layout (default: the ROI plot)."""
    overlay = rpage.curves_pane.object[plot]
    return next(c for c in overlay if c.label == label)


@pytest.fixture(scope="module")
def demo(demo_dir):
    return demo_dir / CATALOG_NAME, demo_dir


@pytest.fixture(scope="module")
def context(demo):
    return CatalogContext(demo[0])


@pytest.fixture(scope="module")
def transmission(context):
    """The demo run calibrated by the analyses directly (lazy)."""
    dark = dark_master(context.open("imat_dark").counts)
    flat = flat_master(context.open("imat_flat").counts, dark)
    return calibrate(context.open("imat_run").counts, dark.compute(), flat.compute())


@pytest.fixture
def rpage(context):
    rpage = RadiographyPage(AppState(context))
    rpage.set_rois(ROIS)
    return rpage


def test_defaults_come_from_names_and_metadata(rpage):
    chosen = [
        w.value for w in (rpage.run, rpage.dark, rpage.flat, rpage.massspec, rpage.temperature)
    ]
    assert chosen == ["imat_run", "imat_dark", "imat_flat", "imat_massspec", "imat_temperature"]
    assert not rpage.alert.visible


def test_reference_image_is_the_mean_of_the_first_calibrated_frames(rpage, transmission):
    expected = transmission.isel(time=slice(0, 4)).mean("time").values
    # same float32 operations on the same data: equal up to summation order
    np.testing.assert_allclose(rpage.calibrated.reference.values, expected, rtol=1e-6)
    image = rpage.image_pane.object[()].Image.I
    np.testing.assert_allclose(image.dimension_values(2, flat=False), expected, rtol=1e-6)


def test_curves_are_the_roi_means_of_the_calibrated_run(rpage, transmission, demo):
    expected = roi_means(transmission, ROIS)["mean"].compute()
    # one kernel on the same float32 frames: equal to float64 rounding
    np.testing.assert_allclose(rpage.series.values, expected.values, rtol=1e-12)
    assert list(rpage.series["roi"].values) == list(ROIS)
    np.testing.assert_array_equal(rpage.series["time"].values, expected["time"].values)
    plotted = _curve(rpage, "bed_top").dimension_values(1)
    np.testing.assert_allclose(plotted, expected.sel(roi="bed_top").values, rtol=1e-12)
    # and the truth: relative to air (drift removed), within the 0.5 % the issue asks
    _, arrays = read_truth(demo[1] / "radiography")
    relative = expected.sel(roi="bed_top") / expected.sel(roi="air")
    truth = arrays["transmission"][:, 3] / arrays["transmission"][:, 0]
    np.testing.assert_allclose(relative.values, truth, rtol=5e-3)
    assert "bed_top, air" in rpage.status.object


def test_logs_share_the_time_axis_above_the_curves(rpage):
    layout = rpage.curves_pane.object
    # one "time" dimension in every plot: bokeh links their x ranges
    assert [p.values()[0].kdims[0].name for p in layout.values()] == ["time"] * 3
    massspec = rpage.state.context.open("imat_massspec")
    argon = _curve(rpage, "Argon", plot=0)
    np.testing.assert_array_equal(argon.dimension_values(1), massspec.Argon.values)
    np.testing.assert_array_equal(argon.dimension_values(0), massspec.time.values)


def test_drawn_boxes_become_table_rows_and_curves(rpage, transmission):
    data = {
        "x0": [134, 10, 50.4],
        "y0": [75, 10, 220.6],  # drawn upwards on the inverted axis: y0 > y1
        "x1": [186, 70, 80.2],
        "y1": [105, 70, 200.2],
        "name": ["bed_top", "air", None],
        "color": ["#1f77b4", "#ff7f0e", None],
    }
    rpage.box_stream.event(data=data)
    new = Rect(50, 200, 30, 21)  # snapped to the nearest pixel edges
    assert rpage.rois == {**ROIS, "ROI 1": new}
    assert rpage.table.value.iloc[-1].tolist() == ["ROI 1", 50, 200, 30, 21]
    expected = roi_means(transmission, {"ROI 1": new})["mean"].compute()
    np.testing.assert_allclose(rpage.series.sel(roi="ROI 1"), expected.sel(roi="ROI 1"))
    # the boxes drawn again carry the name and colour of the new ROI
    boxes = rpage.boxes[()]
    assert boxes.dimension_values("name").tolist() == ["bed_top", "air", "ROI 1"]
    # a moved box (bed_top) and a deleted one (air)
    rpage.box_stream.event(data={k: [v[0], v[2]] for k, v in data.items()} | {"x0": [140, 50]})
    assert rpage.rois == {"bed_top": Rect(140, 75, 46, 30), "ROI 1": new}


def test_table_edits_move_the_boxes(rpage):
    table = rpage.table.value.copy()
    table.loc[0, ["x", "w"]] = [120, 10]  # resize bed_top by its numbers
    rpage.table.value = table
    assert rpage.rois["bed_top"] == Rect(120, 75, 10, 30)
    rows = rpage.boxes[()].array(["x0", "y0", "x1", "y1"])
    np.testing.assert_array_equal(rows[0], [120, 75, 130, 105])
    # an invalid row is reported and left out; the valid ones stay
    table.loc[1, "w"] = 0
    rpage.table.value = table
    assert rpage.alert.visible and "w and h must be > 0" in rpage.alert.object
    assert list(rpage.rois) == ["bed_top"]
    assert rpage.table.value.loc[1, "w"] == 0  # the row stays as typed
    # deleting with the row's button
    rpage.roi_editor.on_table_click(type("Click", (), {"row": 0})())
    assert rpage.rois == {} and rpage.series is None


def test_rois_from_boxes_clips_to_the_image_and_names_new_boxes():
    data = {"x0": [-5, 3], "y0": [250, 1], "x1": [10, 3.2], "y1": [300, 5], "name": ["", None]}
    # second box has no width after snapping: dropped
    assert rois_from_boxes(data, (256, 320)) == {"ROI 1": Rect(0, 250, 10, 6)}


def test_grid_toggle_shows_grid_means(rpage, transmission):
    rpage.grid_rows.value, rpage.grid_cols.value = 3, 5
    rpage.grid_region.value = "bed_top"
    rpage.grid_on.value = True
    expected = grid_means(transmission, 3, 5, region=ROIS["bed_top"])["mean"].compute()
    np.testing.assert_allclose(rpage.grid.values, expected.values, rtol=1e-12)
    rpage.frame.value = 30
    overlay = rpage._grid[()]
    np.testing.assert_allclose(
        overlay.dimension_values(2, flat=False), expected.isel(time=30).values, rtol=1e-12
    )
    heatmap = rpage.curves_pane.object.QuadMesh.I
    np.testing.assert_allclose(
        heatmap.dimension_values(2, flat=False),
        expected.stack(cell=("row", "col")).transpose("cell", "time").values,
        rtol=1e-12,
    )
    rpage.grid_on.value = False
    assert rpage.grid is None and len(rpage.curves_pane.object) == 3


def test_beer_lambert_toggle_plots_concentrations(rpage):
    rpage.beer_lambert.value = True
    rpage.thickness.value, rpage.cross_section.value = 1.3, 2 * 82.574
    expected = beer_lambert(
        normalise(rpage.series, dim="time", reference=0),
        thickness_cm=1.3,
        cross_section_barn=2 * 82.574,
    )
    shown, quantity = rpage.shown_series()
    assert quantity == "concentration" and shown.attrs["units"] == "mmol/cm3"
    np.testing.assert_allclose(shown.values, expected.values, rtol=1e-12)
    plotted = _curve(rpage, "bed_top").dimension_values(1)
    np.testing.assert_allclose(plotted, expected.sel(roi="bed_top").values, rtol=1e-12)
    rpage.beer_lambert.value = False
    np.testing.assert_array_equal(rpage.shown_series()[0].values, rpage.series.values)


def test_difference_frame_is_the_analyses_display(rpage, transmission):
    rpage.diff_reference.value = 2
    rpage.frame.value = 40
    expected = difference(transmission, reference=2)["display"].isel(time=40).values
    np.testing.assert_array_equal(rpage.difference_frame.values, expected)
    shown = rpage.difference_pane.object.dimension_values(2, flat=False)
    np.testing.assert_array_equal(shown, expected)


def test_save_and_load_round_trip(rpage, tmp_path):
    saved = json.loads(rpage.roi_editor.roi_file().getvalue())
    assert saved == {"rois": {n: dict(zip("xywh", r, strict=True)) for n, r in ROIS.items()}}
    rpage.set_rois({})
    rpage.upload.filename = "mine.json"
    rpage.upload.value = json.dumps(saved).encode()
    assert rpage.rois == ROIS
    rpage.upload.filename = "mine.csv"
    rpage.upload.value = b"name,x,y,w,h\nwall,121,80,6,100\n"
    assert rpage.rois == {"wall": Rect(121, 80, 6, 100)}


def test_bad_choices_show_an_alert_and_the_page_recovers(rpage):
    rpage.upload.filename = "broken.json"
    rpage.upload.value = b"{not json"
    assert rpage.alert.visible and "broken.json" in rpage.alert.object
    assert rpage.rois == ROIS  # unchanged
    rpage.set_rois({**ROIS, "outside": Rect(300, 10, 60, 60)})
    assert "ROI 'outside'" in rpage.alert.object and "outside the image" in rpage.alert.object
    rpage.dark.value = "femtomax_scan"  # 256 x 256 frames against 256 x 320 flats
    assert "dark 'femtomax_scan'" in rpage.alert.object and "does not match" in rpage.alert.object
    rpage.dark.value = "imat_dark"
    assert "femtomax_scan" not in rpage.alert.object
    assert list(rpage.series["roi"].values) == list(ROIS)  # the good ROIs are still plotted


def test_rois_are_computed_once(rpage, monkeypatch):
    calls = []
    import beamcat.apps.radiography_data as module  # where the page calls calibrated_means

    real = module.calibrated_means
    monkeypatch.setattr(
        module,
        "calibrated_means",
        lambda *args, rois, **kw: calls.append(list(rois)) or real(*args, rois=rois, **kw),
    )
    rpage.set_rois({**ROIS, "wall": Rect(121, 80, 6, 100)})
    # one reduction, for the new ROI only
    assert calls == [["wall"]]
    assert pd.Index(rpage.series["roi"].values).tolist() == [*ROIS, "wall"]


def test_only_runs_it_can_calibrate_are_offered(rpage):
    # the demo's other stacks (femtomax_scan, gainmap_pos*) have no dark and flat of their own
    assert rpage.run.options == ["imat_run"]
    rpage.state.entry = "femtomax_scan"  # selected on the catalog page
    assert rpage.run.value == "imat_run" and rpage.dark.value == "imat_dark"
    assert not rpage.alert.visible  # no shape-mismatch banner over a stale image


def test_a_superseded_log_load_does_not_wipe_the_later_one(rpage, monkeypatch):
    # Two log loads overlap (both log widgets are set when the page fills in, and on a
    # loaded machine their threads finish in any order). The first load is held until
    # the second has finished: the late, superseded result must leave the second's logs
    # on the page (it once set them to {} and the mass-spec plot vanished).
    import asyncio
    import threading

    import beamcat.apps.radiography_page as module

    real, release, held = module.preview_timeseries, threading.Event(), []

    def preview(ds):
        if not held:
            held.append(threading.get_ident())
        if threading.get_ident() == held[0]:
            assert release.wait(timeout=120), "the second load never finished"
        return real(ds)

    monkeypatch.setattr(module, "preview_timeseries", preview)

    async def overlap():
        first = asyncio.create_task(rpage._update_logs())
        await asyncio.sleep(0)  # the first load is now in its worker thread, held
        await rpage._update_logs()  # the later load, complete
        shown = sorted(rpage.logs)
        release.set()
        await first
        return shown

    shown = asyncio.run(overlap())
    assert shown == ["massspec", "temperature"]
    assert sorted(rpage.logs) == shown
    argon = _curve(rpage, "Argon", plot=0)  # the mass-spec plot is still drawn
    massspec = rpage.state.context.open("imat_massspec")
    np.testing.assert_array_equal(argon.dimension_values(1), massspec.Argon.values)
