"""The gain-map page without a browser, on the demo's five detector positions.

What the page shows is compared with `gain_map` and `position_spread` run in the
test on the same entries and PONIs (the page adds no arithmetic of its own), and
the map with the demo's planted gain (the page's map recovers it).
"""

from __future__ import annotations

import asyncio

import holoviews as hv
import numpy as np
import pytest

import beamcat
from beamcat.analyses.gainmap import gain_map, position_spread
from beamcat.apps.gainmap_page import GainmapPage, position_groups
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.demo import CATALOG_NAME, read_truth

POSITIONS = [f"gainmap_pos{k}" for k in range(1, 6)]


@pytest.fixture(scope="module")
def computed(demo_dir):
    page = GainmapPage(AppState(CatalogContext(demo_dir / CATALOG_NAME)))
    asyncio.run(page._fill_entries())
    asyncio.run(page.compute())
    return page


def test_the_demo_positions_and_their_ponis_are_chosen(computed, demo_dir):
    assert computed.entries.value == POSITIONS
    assert list(computed.table.value["entry"]) == POSITIONS
    assert [p.split("/")[-1] for p in computed.table.value["poni"]] == [
        f"pos{k}.poni" for k in range(1, 6)
    ]
    groups = position_groups(computed.state.context, computed.state.context.entry_infos())
    assert list(groups) == ["gainmap_pos"]  # diffraction_ceo2, femtomax_scan: alone


def test_the_page_map_is_gain_map_and_recovers_the_planted_gain(computed, demo_dir):
    assert not computed.banners.alert.visible, computed.banners.alert.object
    catalog = beamcat.open_catalog(demo_dir / CATALOG_NAME)
    images = [catalog[name].read() for name in POSITIONS]
    ponis = [demo_dir / "gainmap" / f"pos{k}.poni" for k in range(1, 6)]
    expected = gain_map(images, ponis, polarization_factor=0.99)
    np.testing.assert_array_equal(computed.gain["gain"].values, expected["gain"].values)
    np.testing.assert_array_equal(computed.gain["damaged"].values, expected["damaged"].values)
    # the planted gain, on pixels seen by 2 positions or more: a few percent (the median
    # filter of 3 px smooths the demo's pixel-to-pixel scatter; truth median-filtered is the
    # analysis tests' business, here only that the page passes the right data through)
    _, truth = read_truth(demo_dir / "gainmap")
    seen = (computed.gain["seen"].values >= 2) & ~truth["damaged"] & ~truth["dead"]
    ratio = computed.gain["gain_unfiltered"].values[seen] / truth["gain"][seen]
    assert np.nanmedian(np.abs(ratio / np.nanmedian(ratio) - 1)) < 0.01

    before = position_spread(
        images, ponis, polarization_factor=0.99, beamstop=expected["beamstop"].values
    )
    assert float(computed.before["rms_spread"]) == pytest.approx(float(before["rms_spread"]))
    assert float(computed.after["rms_spread"]) < float(computed.before["rms_spread"])
    assert "Gain map of 5 positions" in computed.status.object
    assert f"{int(expected['damaged'].sum())} damaged" in computed.status.object


def test_the_plots_and_the_flat_window(computed):
    window = computed.gain.attrs["flat_range"]
    assert computed.window.value == pytest.approx(tuple(window))  # found automatically
    assert (computed.window.start, computed.window.end) == pytest.approx(
        tuple(computed.gain.attrs["common_range"])
    )
    assert computed.window.disabled and computed._window_pipe.data is None
    # a 2θ range selected on the profiles plot becomes the window of the next Compute
    computed._bounds.event(boundsx=(12.0, 13.0))
    assert computed.window.value == (12.0, 13.0) and not computed.auto_window.value
    assert computed._window_pipe.data == (12.0, 13.0)  # drawn (orange) before computing
    assert computed.options()["flat_range"] == (12.0, 13.0)
    asyncio.run(computed.compute())
    assert computed.gain.attrs["flat_range"] == [12.0, 13.0]
    drawn = hv.render(computed.profiles_pane.object, backend="bokeh")
    assert "flat window 12.00–13.00°" in drawn.title.text


def test_bad_choices_show_an_alert(demo_dir):
    page = GainmapPage(AppState(CatalogContext(demo_dir / CATALOG_NAME)))
    asyncio.run(page._fill_entries())
    page.auto_window.value = False
    page.window.value = (30.0, 31.0)  # beyond what every position measured
    asyncio.run(page.compute())
    assert "flat_range" in page.banners.alert.object and page.gain is None
    page.entries.value = POSITIONS[:1]
    asyncio.run(page.compute())
    assert "2 positions or more" in page.banners.alert.object
