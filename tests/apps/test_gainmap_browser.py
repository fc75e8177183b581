"""The Gain map page in a real browser, on the demo catalog.

The test presses Compute and waits for the page to say it made the map of the
five demo positions, then reads the plots BokehJS draws (the profiles' lines,
the painted gain map).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_gain_page_computes_the_demo_map(demo_server, chromium, find_plot, painted, tmp_path):
    page = chromium.new_page(viewport={"width": 1500, "height": 1900})
    page.goto(demo_server)
    page.locator(".bk-tab", has_text="Gain map").click()
    table = page.locator(".beamcat-gainmap-positions")
    expect(table).to_contain_text("gainmap_pos5")  # the five positions and their PONIs
    expect(table).to_contain_text("pos5.poni")
    page.get_by_role("button", name="Compute", exact=True).click()
    status = page.locator(".beamcat-gainmap-status")
    expect(status).to_contain_text("Gain map of 5 positions")
    expect(status).to_contain_text("after")
    # five measured profiles, five continued, the expected one
    profiles = find_plot(page, "Radial profiles", ready=lambda p: p["lines"] >= 11)
    gain = find_plot(page, "Gain map (damaged")
    assert painted(page, gain, min_std=0.02) > 0.02
    assert profiles["x"][1] > profiles["x"][0]
    find_plot(page, "After correction", ready=lambda p: p["lines"] == 5)  # one per position
    page.screenshot(path=tmp_path / "gainmap.png", full_page=True)
