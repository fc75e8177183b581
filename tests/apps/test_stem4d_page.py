"""The 4D-STEM page on the demo scan: its data layer, the page without a browser, and in one.

What the page shows is compared with the analyses run in the test on the same
entry (`virtual_images`, `radial_profiles`, `nmf`: the page adds no arithmetic of
its own), with the frames as NumPy reads them (virtual images are sums of
integer counts times 0/1 masks, exact in float64, so they are compared exactly),
and with the demo's planted truth (centre, disc radius, Au fraction). The
browser test clicks a scan position and types an annulus, and waits for the
plots BokehJS holds to show that position's pattern and the new virtual image.
"""

from __future__ import annotations

import asyncio

import dask.array as da
import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from playwright.sync_api import expect

import beamcat
from beamcat.analyses.decomposition import nmf
from beamcat.analyses.stem4d import annulus_mask, disc_mask, radial_profiles, virtual_images
from beamcat.apps import stem4d_data
from beamcat.apps.state import AppState, CatalogContext
from beamcat.apps.stem4d_data import (
    Detector,
    find_centre,
    nmf_of,
    pattern_at,
    position_profile,
    scan_frames,
    virtual_image,
)
from beamcat.apps.stem4d_page import Stem4DPage
from beamcat.apps.stem4d_plots import calibration_element, scan_position
from beamcat.catalog.demo import CATALOG_NAME, read_truth
from beamcat.errors import OptionError
from tests.apps._helpers import Recorder, settled


@pytest.fixture(scope="module")
def context(demo_dir):
    return CatalogContext(demo_dir / CATALOG_NAME)


@pytest.fixture(scope="module")
def scan(demo_dir):
    """The demo scan as NumPy (32 x 32 x 128 x 128 uint16, 34 MB) and its truth."""
    ds = beamcat.open_catalog(demo_dir / CATALOG_NAME)["stem4d_scan"].read()
    info, arrays = read_truth(demo_dir / "stem4d")
    return ds, ds["counts"].values, info, arrays


@pytest.fixture(scope="module")
def page(context):
    page = Stem4DPage(AppState(context))
    asyncio.run(page._fill_entries())
    return page


# ------------------------------------------------------------------ data layer


def test_pattern_at_reads_one_frame():
    values = np.arange(4 * 5 * 6 * 7, dtype=np.uint16).reshape(4, 5, 6, 7)
    source = Recorder(values)
    frames = xr.DataArray(
        da.from_array(source, chunks=(1, 1, 6, 7)), dims=("scan_y", "scan_x", "y", "x")
    )
    np.testing.assert_array_equal(pattern_at(frames, 2, 3), values[2, 3])
    # one frame's pixels read, never the rest of the scan (dask reads an empty slice for
    # the array's meta first)
    assert [values[key].size for key in source.reads if values[key].size] == [6 * 7]
    with pytest.raises(OptionError, match=r"\(4, 0\) outside the 4 x 5 scan"):
        pattern_at(frames, 4, 0)


def test_scan_frames_and_centre_of_the_demo(context, scan):
    ds, values, info, _ = scan
    frames = scan_frames(context, "stem4d_scan")
    assert frames.dims == ("scan_y", "scan_x", "y", "x") and frames.chunks is not None  # lazy
    assert frames.attrs["calibration"]["x0"] == info["ellipse"]["x0"]
    # the bright-field disc's centroid: the planted centre within 0.2 px (Poisson noise on a
    # disc of ~80 pixels), its radius within half a pixel of the planted 5 px
    x0, y0 = find_centre(values.mean(axis=(0, 1)))
    assert abs(x0 - info["centre"][0]) < 0.2 and abs(y0 - info["centre"][1]) < 0.2
    assert abs(stem4d_data.disc_radius(values.mean(axis=(0, 1))) - info["disc_radius_px"]) < 0.5
    with pytest.raises(OptionError, match="expected a 4D-STEM scan"):
        scan_frames(context, "diffraction_ceo2")


def test_detectors_are_the_analyses_masks():
    shape, centre = (20, 24), (11.0, 9.5)
    np.testing.assert_array_equal(Detector(0, 4, centre).mask(shape), disc_mask(shape, centre, 4))
    np.testing.assert_array_equal(
        Detector(3, 8, centre).mask(shape), annulus_mask(shape, centre, 3, 8)
    )
    assert Detector(0, 4, centre).label == "BF disc r ≤ 4 px"
    assert Detector(3, 8.5, centre).label == "annulus 3–8.5 px"
    with pytest.raises(OptionError, match="inner=9, outer=8"):
        Detector(9, 8, centre).mask(shape)


def test_virtual_image_is_numpy_and_cached(context, scan):
    _, values, info, _ = scan
    detector = Detector(6.0, 40.0, tuple(info["centre"]))
    mask = detector.mask(values.shape[-2:])
    expected = (values.astype(np.float64) * mask).sum(axis=(-2, -1))
    before = virtual_image.cache_info()
    image = virtual_image(context, "stem4d_scan", detector)
    np.testing.assert_array_equal(image, expected)  # integer sums: exact
    again = virtual_image(context, "stem4d_scan", Detector(6.0, 40.0, tuple(info["centre"])))
    assert again is image  # the same detector again: the cache, no second pass
    after = virtual_image.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_position_profile_is_the_scan_profile_there(context, scan):
    ds = scan[0]
    frames = scan_frames(context, "stem4d_scan")
    profile = position_profile(frames, pattern_at(frames, 5, 9), centre=(0.0, 0.0))
    expected = radial_profiles(ds).isel(scan_y=5, scan_x=9).compute()  # attrs' calibration
    for var in ("mean", "variance", "normalized_variance", "count"):
        np.testing.assert_array_equal(profile[var].values, expected[var].values)
    np.testing.assert_array_equal(profile["q"].values, expected["q"].values)
    assert profile["q"].attrs["units"] == "1/Angstrom"


def test_nmf_of_the_demo_scan_finds_the_au_fraction(context, scan):
    ds, _, _, arrays = scan
    result = nmf_of(context, "stem4d_scan", 2, centre=(0.0, 0.0), q_from=0.145)
    expected = nmf(radial_profiles(ds).compute(), 2, q_range=(0.145, float(result["q"].max())))
    np.testing.assert_allclose(result["loadings"].values, expected["loadings"].values)
    # one loading map follows the planted Au fraction (the issue's |r| >= 0.9; measured
    # 0.945 from twice the BF disc radius, 10 px = 0.145 1/A, the page's default start)
    r = [
        abs(np.corrcoef(m.ravel(), arrays["au_fraction"].ravel())[0, 1])
        for m in result["loadings"].values
    ]
    assert max(r) >= 0.9
    with pytest.raises(OptionError, match="components"):
        nmf_of(context, "stem4d_scan", 5000, centre=(0.0, 0.0))


def test_scan_position_and_rings():
    assert scan_position(0.0, 0.0, (2, 3)) == (0, 0)
    assert scan_position(2.99, 1.99, (2, 3)) == (1, 2)
    assert scan_position(-0.1, 1.0, (2, 3)) is None and scan_position(None, 1, (2, 3)) is None
    assert [len(p.data) for p in calibration_element(None)] == [0, 0]


# ------------------------------------------------------------------ the page


def test_the_page_opens_the_calibrated_demo_scan(page, scan):
    ds, values, info, _ = scan
    assert page.entry.options == ["stem4d_au_reference", "stem4d_scan"]
    assert page.entry.value == "stem4d_scan"  # the one with a calibration
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.centre == (info["ellipse"]["x0"], info["ellipse"]["y0"])
    # the BF preset: a disc of the bright-field disc's size, its virtual image
    assert page.detector.inner == 0 and abs(page.detector.outer - info["disc_radius_px"]) < 0.5
    bf = disc_mask(values.shape[-2:], page.centre, page.detector.outer)
    expected = virtual_images(ds, {"bf": bf}).isel(mask=0).values
    np.testing.assert_array_equal(page.image, expected)
    assert page._virtual_pipe.data[1] == f"Virtual image: {page.detector.label}"
    # the scan's middle position, its pattern and profile
    assert page.position == (16, 16)
    np.testing.assert_array_equal(page.pattern, values[16, 16])
    assert page._pattern_pipe.data[1] == "Pattern at scan_y=16, scan_x=16"
    # the calibration overlay: the fitted ellipse and the four Au rings
    ellipse, rings = calibration_element(page._calibration_pipe.data)
    assert len(ellipse.data) == 1 and len(rings.data) == 4
    assert "calibrated (220 ring" in page.status.object


def test_a_click_shows_that_position(page, scan):
    values = scan[1]
    settled(lambda: page.tap.event(x=7.5, y=3.2))  # scan_x 7, scan_y 3 on the virtual image
    assert page.position == (3, 7)
    np.testing.assert_array_equal(page.pattern, values[3, 7])
    assert page._pattern_pipe.data[1] == "Pattern at scan_y=3, scan_x=7"
    assert page._marker_pipe.data == (3, 7)
    drawn = hv.render(page.mean_pane.object, backend="bokeh")
    assert drawn.title.text == "Radial mean at scan_y=3, scan_x=7"
    # the mouse moving over the image follows, unless told not to
    settled(lambda: page.pointer.event(x=20.5, y=30.5))
    assert page.position == (30, 20)
    page.follow.value = False
    settled(lambda: page.pointer.event(x=1.5, y=1.5))
    assert page.position == (30, 20)
    page.follow.value = True


def test_the_annulus_typed_or_clicked_on_the_pattern(page, scan):
    ds, values, _, _ = scan
    centre = page.centre
    settled(lambda: page.use_preset("ADF"))
    adf = page.presets["ADF"]
    assert page.detector == adf and adf.inner > 0
    mask = annulus_mask(values.shape[-2:], centre, adf.inner, adf.outer)
    np.testing.assert_array_equal(page.image, virtual_images(ds, mask).isel(mask=0).values)
    # a click on the pattern 30 px right of the centre sets the outer radius to 30 px
    page.click_sets.value = "outer radius"
    settled(lambda: page.pattern_tap.event(x=centre[0] + 0.5 + 30, y=centre[1] + 0.5))
    assert page.detector == Detector(adf.inner, 30.0, centre)
    assert page._virtual_pipe.data[1] == f"Virtual image: annulus {adf.inner:g}–30 px"
    settled(lambda: setattr(page.inner, "value", 12.0))  # typed
    assert page.detector == Detector(12.0, 30.0, centre)
    mask = annulus_mask(values.shape[-2:], centre, 12.0, 30.0)
    np.testing.assert_array_equal(page.image, virtual_images(ds, mask).isel(mask=0).values)


def test_a_bad_annulus_shows_an_alert_and_keeps_the_image(page):
    image, detector = page.image, page.detector
    settled(lambda: setattr(page.inner, "value", 200.0))  # beyond the outer radius
    assert "expected 0 <= inner < outer" in page.banners.alert.object
    assert page.image is image and page.detector is detector
    settled(lambda: page.use_preset("BF"))
    assert not page.banners.alert.visible


def test_nmf_button_shows_components_and_loadings(page, scan):
    asyncio.run(page.compute_nmf())
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.nmf.sizes["component"] == 2
    assert dict(page.nmf["loadings"].sizes) == {"component": 2, "scan_y": 32, "scan_x": 32}
    # from the default start (twice the BF disc: 9.8 px here), one map is the planted Au map
    assert page.nmf_from.value == pytest.approx(2 * page.presets["BF"].outer * 0.0145)
    au = scan[3]["au_fraction"].ravel()
    assert max(abs(np.corrcoef(m.ravel(), au)[0, 1]) for m in page.nmf["loadings"].values) >= 0.9
    drawn = hv.render(page.nmf_pane.object, backend="bokeh")
    assert drawn is not None and "NMF: 2 components" in page.status.object
    page.n_components.value = 100  # more than the 63 q bins
    asyncio.run(page.compute_nmf())
    assert "components" in page.banners.alert.object and page.nmf.sizes["component"] == 2


# ------------------------------------------------------------------ in a browser


@pytest.mark.browser
def test_click_a_position_and_change_the_annulus_in_a_browser(
    demo_server, chromium, find_plot, painted, tmp_path
):
    page = chromium.new_page(viewport={"width": 1500, "height": 1700})
    page.goto(demo_server)
    page.locator(".bk-tab", has_text="4D-STEM").click()
    status = page.locator(".beamcat-stem4d-status")
    # the calibrated demo scan, its BF image and the middle position's pattern with the
    # BF disc (1 path), the fitted ellipse (1) and the four Au rings drawn over it
    find_plot(page, "Pattern at scan_y=16, scan_x=16", ready=lambda p: p["paths"] == 6)
    expect(status).to_contain_text("position scan_y=16, scan_x=16")
    virtual = find_plot(page, "Virtual image: BF disc")  # where it is once the page is laid out
    assert virtual["x"] == [0, 32] and virtual["y"] == [32, 0]  # scan positions, row 0 on top

    # a click on scan position (row 5, column 20): its pattern and radial profile
    x = virtual["left"] + 20.5 * virtual["width"] / 32
    y = virtual["top"] + 5.5 * virtual["height"] / 32
    page.mouse.click(x, y)
    pattern = find_plot(page, "Pattern at scan_y=5, scan_x=20", ready=lambda p: p["paths"] == 6)
    find_plot(page, "Radial mean at scan_y=5, scan_x=20", ready=lambda p: p["lines"] == 1)
    expect(status).to_contain_text("position scan_y=5, scan_x=20")
    assert painted(page, pattern, min_std=0.02) > 0.02

    # an annulus typed (outer first: inner must stay below it): the ADF image, two circles
    for label, value in (("Outer radius", "30"), ("Inner radius", "8")):
        field = page.locator(".bk-input-group", has_text=label).locator("input")
        field.fill(value)
        field.press("Enter")
    image = find_plot(page, "Virtual image: annulus 8–30 px")
    find_plot(page, "Pattern at scan_y=5, scan_x=20", ready=lambda p: p["paths"] == 7)
    expect(status).to_contain_text("annulus 8–30 px")
    assert painted(page, image, min_std=0.02) > 0.02

    # drawn on the pattern: a click 25 px right of the calibration's centre (64.3, 63.1) is
    # the new outer radius (the click lands within a screen pixel, 1/3 detector pixel)
    pattern = find_plot(page, "Pattern at scan_y=5, scan_x=20")
    scale = pattern["width"] / 128
    page.mouse.click(pattern["left"] + (64.3 + 25 + 0.5) * scale,
                     pattern["top"] + (63.1 + 0.5) * scale)  # fmt: skip
    image = find_plot(page, "Virtual image: annulus 8–2")
    outer = float(image["title"].split("–")[1].split()[0])
    assert abs(outer - 25) <= 0.5
    page.screenshot(path=tmp_path / "stem4d.png", full_page=True)


def test_a_scan_without_calibration_gets_circular_bins_and_no_rings(context):
    page = Stem4DPage(AppState(context))
    asyncio.run(page._fill_entries())
    page._choosing = True  # the test chooses, then loads (as the page does on a user's choice)
    page.entry.value = "stem4d_au_reference"
    page._choosing = False
    asyncio.run(page.load())
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.calibration is None and page._calibration_pipe.data is None
    frames = scan_frames(context, "stem4d_au_reference")
    mean = frames.mean(("scan_y", "scan_x")).values
    assert page.centre == pytest.approx(find_centre(mean), abs=1e-9)  # the BF disc centroid
    assert page.position == (4, 4) and page.profile["q"].attrs["units"] == "px"
    assert "no calibration: circular bins around" in page.status.object
    assert page.nmf_from.value == pytest.approx(2 * page.presets["BF"].outer)  # px
