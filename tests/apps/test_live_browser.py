"""The live page in a real browser: draw a ROI, replay the real FemtoMAX recording, watch it.

The recording (30 Pilatus frames of LaB6, 5 motor positions x 6 frames,
PROVENANCE.md) is served as one catalog entry; the test draws a ROI on the
accumulated image with the box-edit tool, presses Replay (at the recorded
rate: about 6 s) and reads the frame count from the page and the ROI plot's
points from the BokehJS models the browser draws. Before the replay it types the
detector's distance and beam centre into the geometry panel: after it, the LaB6
q-curves lie over the accumulated image and its azimuthal integration is drawn.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from beamcat.catalog.build import add_source

pytestmark = pytest.mark.browser

POSITIONS = [1.0, 1.25, 1.5, 1.75, 2.0]


@pytest.fixture(scope="module")
def server(shared_data, tmp_path_factory, serving):
    """The app on a catalog of the real recording; yields its URL."""
    folder = tmp_path_factory.mktemp("live")
    catalog = folder / "catalog.yaml"
    files = sorted((shared_data / "drp_femtomax").iterdir())  # detector + sardana streams
    add_source(catalog, "femtomax_lab6", files, format="cbor-stream")
    with serving(catalog, folder) as url:
        yield url


def test_replay_the_real_recording_into_the_live_page(
    server, tmp_path, chromium, draw_box, find_plot, painted
):
    page = chromium.new_page(viewport={"width": 1500, "height": 1600})
    page.goto(server)
    page.locator(".bk-tab", has_text="Live").click()
    # the entry's header gives the detector's shape before any frame: 831 x 1475, in
    # blocks of 3 (the last column block reaches one pixel past the edge)
    image = find_plot(page, "accumulated", ready=lambda plot: plot["x"][1] > 1000)
    assert image["x"] == [0, 1476] and image["y"] == [831, 0]  # detector pixels, row 0 on top

    # draw a ROI on a LaB6 ring: hold shift and drag with the box-edit tool
    draw_box(page, image, (200, 360, 40, 40), (831, 1476))
    row = page.locator(".beamcat-roi-table .tabulator-row").first
    expect(row).to_contain_text("ROI 1")
    x, y, w, h = (int(v) for v in row.inner_text().split()[2:6])
    # a screen pixel is ~2.3 detector pixels (640 px for 1476): within 3 px of the drag
    assert abs(x - 200) <= 3 and abs(y - 360) <= 3 and abs(w - 40) <= 3 and abs(h - 40) <= 3

    # the geometry read off the LaB6 rings (tests/apps/test_live_geometry.py): distance and
    # beam centre typed; the energy comes from the stream header at the first frame
    for label, value in (("Beam centre x", "205"), ("Beam centre y", "375"), ("Distance", "74")):
        field = page.locator(".bk-input-group", has_text=label).locator("input")
        field.fill(value)
        field.press("Enter")
    expect(page.locator(".beamcat-live-geometry")).to_contain_text("No energy yet")

    page.get_by_role("button", name="Replay", exact=True).click()
    count = page.locator(".beamcat-live-count")
    # each waits for the page to say so (conftest's generous limit): a loaded machine is slower
    expect(count).to_contain_text("replay running")
    expect(count).to_contain_text("30 frames")
    expect(count).to_contain_text("replay done (32 events)")
    steps = find_plot(
        page, "ROI means vs dummy_mot_01", ready=lambda plot: plot["scatter"] == [POSITIONS]
    )
    # q-curves: the LaB6 rings on the detector at 8048 eV, drawn over the accumulated image
    expect(page.locator(".beamcat-live-geometry")).to_contain_text("8048 eV")
    image = find_plot(page, "accumulated: 30 frames", ready=lambda plot: plot["paths"] >= 5)
    # and the azimuthal integration of the 30 accumulated frames, in q
    pattern = find_plot(
        page, "Azimuthal integration: 30 frames", ready=lambda plot: plot["lines"] >= 1
    )
    # the accumulated LaB6 rings are drawn: the image is not one flat colour (once painted)
    for plot in (image, steps, pattern):
        assert painted(page, plot, min_std=0.02) > 0.02
    page.screenshot(path=tmp_path / "live.png", full_page=True)
