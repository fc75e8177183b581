"""What a user sees on the demo catalog's pages, in a real browser.

Every catalog entry is a visible table row with its metadata columns on screen;
the Radiography tab offers only the runs it can calibrate (not whatever entry
the Catalog tab selected) and shows no error; the Live page's image axes span
the image (256 pixels), not another page's (the radiography image's 320).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from beamcat import open_catalog
from beamcat.catalog.build import METADATA_KEYS, describe_entries
from beamcat.catalog.demo import CATALOG_NAME

pytestmark = pytest.mark.browser


def test_catalog_table_shows_every_entry_with_its_metadata(demo_server, demo_dir, chromium):
    names = [row["name"] for row in describe_entries(open_catalog(demo_dir / CATALOG_NAME))]
    assert len(names) == 20  # the demo catalog (stem4d_edx is the 20th)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(demo_server)
    rows = page.locator(".beamcat-catalog-table .tabulator-row")
    expect(rows.filter(has_text="imat_run")).to_contain_text("48 x 256 x 320")  # summaries in
    expect(rows).to_have_count(len(names))
    for name, row in zip(names, rows.all(), strict=True):
        expect(row).to_contain_text(name)
        expect(row).to_be_in_viewport()  # every row on screen, none scrolled away
    for key in METADATA_KEYS:  # each metadata column's header wholly on screen
        header = page.locator(f'.beamcat-catalog-table .tabulator-col[tabulator-field="{key}"]')
        expect(header).to_be_in_viewport(ratio=1)
        assert header.bounding_box()["width"] >= 80  # wide enough to read a few words
    imat_run = rows.filter(has_text="imat_run")
    expect(imat_run.locator('[tabulator-field="instrument"]')).to_have_text("IMAT (ISIS)")
    expect(imat_run.locator('[tabulator-field="instrument"]')).to_be_in_viewport(ratio=1)


def test_radiography_offers_only_runs_it_can_calibrate(demo_server, chromium, find_plot):
    page = chromium.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(demo_server)
    # a stack without a dark or flat of its own, selected on the Catalog tab
    page.locator(".tabulator-row", has_text="femtomax_scan").click()
    expect(page.locator("#sidebar")).to_contain_text("femtomax_scan")
    page.locator(".bk-tab", has_text="Radiography").click()
    run = page.locator("select").first
    expect(run).to_have_value("imat_run")
    assert run.locator("option").all_inner_texts() == ["imat_run"]
    expect(page.locator(".beamcat-radiography-status")).to_contain_text("imat_run: 48 frames")
    find_plot(page, "transmission: mean of frames")  # the calibrated image is drawn
    expect(page.locator(".alert-danger:visible")).to_have_count(0)  # and no error banner


def test_live_image_axes_fit_the_image(demo_server, chromium, find_plot):
    page = chromium.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(demo_server)
    # the Radiography tab first: its image is 320 pixels wide
    page.locator(".bk-tab", has_text="Radiography").click()
    radiography = find_plot(page, "transmission: mean of frames")
    assert radiography["x"] == [0, 320]
    page.locator(".bk-tab", has_text="Live").click()
    # the demo recording (femtomax_scan, 256 x 256 frames): drawn once its shape is known
    image = find_plot(page, "accumulated image", ready=lambda plot: plot["y"] == [256, 0])
    assert image["x"] == [0, 256] and image["y"] == [256, 0]  # detector pixels, row 0 on top
