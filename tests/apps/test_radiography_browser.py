"""The radiography page in a real browser: draw a ROI with the mouse, see its curve appear."""

from __future__ import annotations

import io
import time

import matplotlib.pyplot as plt
import pytest
from playwright.sync_api import expect

from beamcat.catalog.demo import make_demo

pytestmark = pytest.mark.browser

#: the plots of the live document: title, frame box (page px) and data ranges
PLOTS_JS = """() => {
  const out = [];
  const walk = (v) => {
    if (v.frame && v.model.title !== undefined && v.model.title) {
      const el = v.el.getBoundingClientRect();
      out.push({title: v.model.title.text, left: el.left + v.frame.bbox.x,
                top: el.top + v.frame.bbox.y, width: v.frame.bbox.width,
                height: v.frame.bbox.height,
                x: [v.model.x_range.start, v.model.x_range.end],
                y: [v.model.y_range.start, v.model.y_range.end],
                active: v.model.toolbar.active_drag ? v.model.toolbar.active_drag.type : null,
                lines: v.model.renderers.filter(r => r.glyph && r.glyph.type === 'Line'
                                                     && r.visible).length});
    }
    for (const c of v.child_views || []) walk(c);
  };
  for (const v of Bokeh.index.roots || Object.values(Bokeh.index)) walk(v);
  return out;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, serving):
    """The app on the demo catalog; yields its URL."""
    folder = tmp_path_factory.mktemp("demo")
    with serving(make_demo(folder), folder) as url:
        yield url


def _plot(page, title_start: str, *, timeout: float = 60) -> dict:
    """The plot whose title starts with `title_start`, once the page has drawn it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in page.evaluate(PLOTS_JS) if p["title"].startswith(title_start)]
        if found:
            return found[0]
        page.wait_for_timeout(200)
    pytest.fail(f"no plot titled {title_start!r}: {page.evaluate(PLOTS_JS)}")


def test_draw_a_roi_and_see_its_curve(server, tmp_path, chromium, draw_box):
    page = chromium.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(server)
    page.locator(".bk-tab", has_text="Radiography").click()
    status = page.locator(".beamcat-radiography-status")
    # the demo run is the default; picking it again is what a user would do
    run = page.locator("select").first
    expect(run).to_have_value("imat_run", timeout=60_000)
    expect(status).to_contain_text("imat_run: 48 frames", timeout=60_000)
    image = _plot(page, "transmission: mean of frames")
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
    curves = _plot(page, "ROI transmission", timeout=30)
    assert curves["lines"] == 1
    logs = _plot(page, "imat_massspec")
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
