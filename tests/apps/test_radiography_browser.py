"""The radiography page in a real browser: draw a ROI with the mouse, see its curve appear."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import pytest
from playwright.sync_api import expect

from beamcat.catalog.demo import CATALOG_NAME

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(demo_dir, tmp_path_factory, serving):
    """The app on the demo catalog; yields its URL."""
    with serving(demo_dir / CATALOG_NAME, tmp_path_factory.mktemp("server")) as url:
        yield url


def test_draw_a_roi_and_see_its_curve(server, tmp_path, chromium, draw_box, find_plot):
    page = chromium.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(server)
    page.locator(".bk-tab", has_text="Radiography").click()
    status = page.locator(".beamcat-radiography-status")
    # the demo run is the default; picking it again is what a user would do
    run = page.locator("select").first
    expect(run).to_have_value("imat_run", timeout=60_000)
    expect(status).to_contain_text("imat_run: 48 frames", timeout=60_000)
    image = find_plot(page, "transmission: mean of frames")
    assert image["x"] == [0, 320] and image["y"] == [256, 0]  # pixels, row 0 on top
    assert image["active"] == "BoxEditTool"  # the page makes box editing the drag tool

    # BoxEditTool (bokeh 3): hold shift and drag to draw a box
    draw_box(page, image, (134, 75, 52, 30), (256, 320))

    # the box is a ROI (snapped to pixel edges), a table row and a curve
    row = page.locator(".beamcat-roi-table .tabulator-row").first
    expect(row).to_contain_text("ROI 1", timeout=30_000)
    x, y, w, h = (int(v) for v in row.inner_text().split()[2:6])
    # screen pixels are 1.5 image pixels: the box lands within a pixel of the drag
    assert abs(x - 134) <= 1 and abs(y - 75) <= 1
    assert abs(w - 52) <= 1 and abs(h - 30) <= 1
    expect(status).to_contain_text("curves (transmission): ROI 1", timeout=30_000)
    curves = find_plot(page, "ROI transmission", timeout=30)
    assert curves["lines"] == 1
    logs = find_plot(page, "imat_massspec")
    assert logs["x"] == curves["x"]  # one shared time axis
    page.wait_for_timeout(500)  # let bokeh paint
    page.screenshot(path=tmp_path / "radiography.png", full_page=True)
    # the curve is drawn: the plot frame is not one flat colour
    box = {k: curves[k] for k in ("width", "height")} | {
        "x": curves["left"],
        "y": curves["top"],
    }
    pixels = plt.imread(io.BytesIO(page.screenshot(clip=box)))
    assert pixels[..., :3].std() > 0.02

    # dragging the box's right edge resizes the ROI; dragging inside it moves it
    def drag(start, end):
        at = [
            (image["left"] + px * image["width"] / 320, image["top"] + py * image["height"] / 256)
            for px, py in (start, end)
        ]
        page.mouse.move(*at[0])
        page.mouse.down()
        for f in (0.25, 0.5, 0.75, 1.0):
            page.mouse.move(*(a + f * (b - a) for a, b in zip(*at, strict=True)))
        page.mouse.up()

    def table_row():
        return [int(v) for v in row.inner_text().split()[2:6]]

    drag((x + w, y + h / 2), (x + w + 20, y + h / 2))
    page.wait_for_timeout(1500)  # the resize is adopted once the edge stood still 0.3 s
    x2, y2, w2, h2 = table_row()
    assert (x2, y2, h2) == (x, y, h) and abs(w2 - (w + 20)) <= 1  # only the right edge moved
    drag((x + 10, y + h / 2), (x + 40, y + h / 2 + 10))
    page.wait_for_timeout(1500)
    x3, y3, w3, h3 = table_row()
    # a move: same size; the box-edit tool picks the box up a few screen pixels into the drag
    assert (w3, h3) == (w2, h2) and abs(x3 - (x + 30)) <= 3 and abs(y3 - (y + 10)) <= 3
