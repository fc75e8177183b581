"""The radiography page in a real browser: draw a ROI with the mouse, see its curve appear."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_draw_a_roi_and_see_its_curve(
    demo_server, tmp_path, chromium, drag, find_plot, browser_rois, wait_for, painted
):
    """Draw, resize and move a ROI with the mouse; each step is checked once the page adopted it.

    Every step waits for states, never for time: after a drag, first for the
    browser's own models to show it (BokehJS moved the box or its resize handle),
    then for the page to adopt it (the ROI table's row, written by the server, and
    the browser's box and handle agree), and only then asserts on the numbers. A
    drag is done again only when the page's state proves it was lost (see
    ``interact``): on a loaded machine a redraw from the server can race it.
    """
    page = chromium.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(demo_server)
    page.locator(".bk-tab", has_text="Radiography").click()
    status = page.locator(".beamcat-radiography-status")
    # the demo run is the default; picking it again is what a user would do
    run = page.locator("select").first
    expect(run).to_have_value("imat_run")
    expect(status).to_contain_text("imat_run: 48 frames")
    title = "transmission: mean of frames"
    image = find_plot(page, title)
    assert image["x"] == [0, 320] and image["y"] == [256, 0]  # pixels, row 0 on top
    assert image["active"] == "BoxEditTool"  # the page makes box editing the drag tool
    row = page.locator(".beamcat-roi-table .tabulator-row").first

    def table_row():
        """The first ROI's (x, y, w, h) as the page's table shows it (set by the server)."""
        cells = row.inner_text().split() if row.count() else []
        return tuple(int(v) for v in cells[2:6]) if len(cells) >= 6 else None

    def settled():
        """The adopted ROI, once the table, the browser's box and its resize handle agree."""
        rect, rois = table_row(), browser_rois(page, title)
        if rect is None or rois is None:
            return None
        x, y, w, h = rect
        edges = [x, y, x + w, y + h]
        same = rois["boxes"] == [edges] and rois["handles"].get("ROI 1") == edges
        return rect if same else None

    def interact(start, end, *, shift=False, received, adopted, what):
        """Drag, then wait until the page adopted it; returns what `adopted()` returned.

        The drag is done again only when the page's state proves it was lost:
        the browser's models did not take it, or a redraw from the server put them
        back as they were before it (a redraw racing the drag) while the server's
        table still shows the old ROI.
        """
        for _ in range(3):
            plot = find_plot(page, title)  # where the image is now
            before, row_before = browser_rois(page, title), table_row()
            drag(page, plot, start, end, (256, 320), shift=shift)
            if not received(before, browser_rois(page, title)):
                continue  # BokehJS did not take the drag

            def outcome(before=before, row_before=row_before):
                if rect := adopted():
                    return ("adopted", rect)
                lost = browser_rois(page, title) == before and table_row() == row_before
                return ("lost", None) if lost else None

            result, rect = wait_for(page, outcome, what=what)
            if result == "adopted":
                return rect
        pytest.fail(f"{what}: three drags from {start} to {end} were lost")

    # BoxEditTool (bokeh 3): hold shift and drag to draw a box
    box = (134, 75, 52, 30)
    x, y, w, h = interact(
        box[:2],
        (box[0] + box[2], box[1] + box[3]),
        shift=True,
        received=lambda before, after: len(after["boxes"]) > len(before["boxes"]),
        adopted=settled,
        what="drawn ROI adopted",
    )
    # the box is a ROI (snapped to pixel edges), a table row and a curve
    expect(row).to_contain_text("ROI 1")
    # screen pixels are 1.5 image pixels: the box lands within a pixel of the drag
    assert abs(x - 134) <= 1 and abs(y - 75) <= 1
    assert abs(w - 52) <= 1 and abs(h - 30) <= 1
    expect(status).to_contain_text("curves (transmission): ROI 1")
    curves = find_plot(page, "ROI transmission")
    assert curves["lines"] == 1
    logs = find_plot(page, "imat_massspec")
    assert logs["x"] == curves["x"]  # one shared time axis
    # the curve is drawn: the plot frame is not one flat colour (waits for bokeh to paint)
    assert painted(page, curves, min_std=0.02) > 0.02
    page.screenshot(path=tmp_path / "radiography.png", full_page=True)

    # dragging the box's right edge resizes the ROI (adopted once the edge stood still 0.3 s)
    x2, y2, w2, h2 = interact(
        (x + w, y + h / 2),
        (x + w + 20, y + h / 2),
        received=lambda before, after: after["handles"].get("ROI 1") != before["handles"]["ROI 1"],
        adopted=lambda: (rect := settled()) and abs(rect[2] - (w + 20)) <= 1 and rect,
        what=f"ROI resized to w = {w + 20}",
    )
    assert (x2, y2, h2) == (x, y, h) and abs(w2 - (w + 20)) <= 1  # only the right edge moved

    # dragging inside the box moves it
    x3, y3, w3, h3 = interact(
        (x + 10, y + h / 2),
        (x + 40, y + h / 2 + 10),
        received=lambda before, after: after["boxes"] != before["boxes"],
        adopted=lambda: (rect := settled()) and abs(rect[0] - (x + 30)) <= 3 and rect,
        what=f"ROI moved to x = {x + 30}",
    )
    # a move: same size; the box-edit tool picks the box up a few screen pixels into the drag
    assert (w3, h3) == (w2, h2) and abs(x3 - (x + 30)) <= 3 and abs(y3 - (y + 10)) <= 3
