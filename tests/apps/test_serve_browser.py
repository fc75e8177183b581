"""`beamcat serve` in a real browser: table, quick look on click, error alert, no CDN."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def server(small_catalog, tmp_path, serving):
    """The app on the small catalog; yields its URL."""
    with serving(small_catalog.path, tmp_path) as url:
        yield url


def test_click_an_entry_shows_its_quick_look(server, small_catalog, tmp_path, chromium, painted):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere = []  # anything not from our server: the app must work offline
    page.on(
        "request",
        lambda r: (
            r.url.startswith(("http", "ws"))
            and not r.url.startswith((server, server.replace("http", "ws", 1)))
            and elsewhere.append(r.url)
        ),
    )
    page.goto(server)

    # dims/shape/size are filled in after load, from the lazily opened Datasets
    stack_row = page.locator(".tabulator-row", has_text="stack")
    expect(stack_row).to_contain_text("6 x 40 x 60")
    expect(stack_row).to_contain_text("IMAT")
    expect(page.locator(".tabulator-row", has_text="broken")).to_contain_text("broken.tif")

    stack_row.click()
    quicklook = page.locator(".beamcat-quicklook")
    plot = quicklook.locator(".bk-Figure, .bk-GridPlot").first
    expect(plot).to_be_visible()
    expect(quicklook.locator("canvas").first).to_be_visible()
    expect(quicklook).to_contain_text("stack")
    expect(quicklook.locator(".beamcat-attrs")).to_contain_text("catalyst bed")
    # the random frames render as grey noise: a blank plot would be one flat colour
    assert painted(page, plot, min_std=0.05) > 0.05
    page.screenshot(path=tmp_path / "quicklook.png", full_page=True)

    page.locator(".tabulator-row", has_text="broken").click()
    alert = quicklook.locator(".alert-danger")
    expect(alert.first).to_contain_text(str(small_catalog.broken))
    expect(page.locator("#sidebar")).to_contain_text("broken")
    assert elsewhere == []
