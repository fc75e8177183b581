"""The SPICE page on the demo raster: its data layer, the page without a browser, and in one.

What the page shows for a pixel is compared with the fitter run in the test on
that pixel's spectrum (`fit_block` with the same model, `evaluate`): the page
adds no arithmetic of its own, so they agree exactly, and with the maps
(`fit_lines` runs the same kernel per spectrum, so again exactly). The maps'
orientation is checked against the demo's planted truth. The browser test
waits for the maps to be drawn, clicks a pixel and waits for its spectrum plot
to hold the model and every component (BokehJS's line renderers).
"""

from __future__ import annotations

import asyncio

import dask.array as da
import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from playwright.sync_api import expect

from beamcat.analyses.linefit import FitStatus, evaluate, fit_block, line_model
from beamcat.apps import spice_data
from beamcat.apps.spice_data import (
    FitOptions,
    Spectrum,
    entry_window,
    fit_pixel,
    fit_window,
    prepared,
    spectral_entries,
    spectrum_at,
    window_choices,
    window_lines,
    window_model,
)
from beamcat.apps.spice_page import SpicePage
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.build import add_source
from beamcat.catalog.demo import CATALOG_NAME, read_truth
from beamcat.errors import OptionError

# the 4D-STEM page's test helpers: a recording array-like, and awaiting the page's tasks
from tests.apps._helpers import Recorder, settled

ENTRY = "spice_window0"  # O III 703 / Mg IX 706: three lines, 60 samples, 96 x 48 pixels
LINES = ["o_iii_1", "o_iii_2", "mg_ix_1"]


@pytest.fixture(scope="module")
def context(demo_dir):
    return CatalogContext(demo_dir / CATALOG_NAME)


@pytest.fixture(scope="module")
def truth(demo_dir):
    return read_truth(demo_dir / "spice")


@pytest.fixture(scope="module")
def maps(context):
    """The demo window's maps with the default options, and the progress reported."""
    reported = []
    return fit_window(context, ENTRY, 0, FitOptions(), reported.append), reported


@pytest.fixture(scope="module")
def page(context):
    page = SpicePage(AppState(context))
    asyncio.run(page._fill_entries())
    return page


# ------------------------------------------------------------------ data layer


def test_entries_and_windows_of_the_demo(context):
    assert spectral_entries(context.entry_infos()) == [f"spice_window{k}" for k in range(4)]
    names = ["O III 703 / Mg IX 706", "Ne VIII 770", "C III 977", "O VI 1032"]
    assert window_choices(context, ENTRY) == {name: k for k, name in enumerate(names)}
    assert entry_window(context, "spice_window2") == 2  # the entry's own window= option
    # another window of the same file, opened with the entry's options
    other = prepared(context, ENTRY, 1)
    assert other.attrs["window"] == "Ne VIII 770" and list(window_lines(other)) == ["ne_viii_1"]


def test_spectrum_at_reads_one_spectrum():
    values = np.arange(1 * 7 * 5 * 4, dtype=np.float32).reshape(1, 7, 5, 4)
    source = Recorder(values)
    dims = ("time", "wavelength", "y", "x")
    cube = xr.DataArray(da.from_array(source, chunks=(1, 7, 5, 4)), dims=dims)
    ds = xr.Dataset(
        {"radiance": cube, "sigma": xr.ones_like(cube), "spikes": xr.zeros_like(cube, bool)},
        coords={"wavelength": 700.0 + np.arange(7)},
        attrs={"signal": "radiance"},
    )
    spectrum = spectrum_at(ds, 3, 2)
    np.testing.assert_array_equal(spectrum.values, values[0, :, 3, 2])
    assert spectrum.position == (3, 2) and spectrum.shift == 0.0
    # one spectrum's samples read, never the rest of the raster (dask reads an empty slice
    # for the array's meta first)
    assert [values[key].size for key in source.reads if values[key].size] == [7]
    with pytest.raises(OptionError, match=r"\(5, 0\) outside the 5 x 4 window"):
        spectrum_at(ds, 5, 0)


def test_the_pixel_fit_is_fit_block_on_its_spectrum_and_the_maps_there(context, maps):
    result, _ = maps
    data = prepared(context, ENTRY, 0)
    model = window_model(data, FitOptions())
    assert list(model.lines) == LINES
    for i, j in [(0, 0), (40, 17), (95, 47)]:
        spectrum = spectrum_at(data, i, j)
        expected_values = data["radiance"].isel(time=0, y=i, x=j).values
        np.testing.assert_array_equal(spectrum.values, expected_values)
        fit = fit_pixel(spectrum, model)
        direct = fit_block(spectrum.wavelength, spectrum.values[None], spectrum.sigma[None], model)
        np.testing.assert_array_equal(list(fit.params.values()), direct["params"][0])
        np.testing.assert_array_equal(list(fit.errors.values()), direct["errors"][0])
        assert fit.status == direct["status"][0] and fit.chi2 == direct["chi2"][0]
        total, components = evaluate(model, direct["params"][0], spectrum.wavelength)
        np.testing.assert_array_equal(fit.total, total)
        np.testing.assert_array_equal(np.array(list(fit.components.values())), components)
        np.testing.assert_array_equal(fit.residuals, spectrum.values - total)
        # the maps hold the same numbers there: fit_lines runs the same kernel per spectrum
        at = result.isel(time=0, y=i, x=j)
        np.testing.assert_array_equal(at["parameters"].values, direct["params"][0])
        assert at["status"] == fit.status
        for line in LINES:
            velocity, error = fit.velocity(line)
            assert velocity == pytest.approx(float(at["velocity"].sel(line=line)), rel=1e-12)
            assert error == pytest.approx(float(at["velocity_error"].sel(line=line)), rel=1e-12)


def test_maps_follow_the_planted_truth_and_are_cached(context, maps, truth):
    result, reported = maps
    _, arrays = truth
    assert result["intensity"].dims == ("line", "time", "y", "x")
    converged = result["status"].isel(time=0).values == FitStatus.CONVERGED
    assert converged.mean() > 0.95  # a few pixels at a width bound (measured 53 of 4608)
    for line in LINES:  # orientation and line order: maps correlate with the planted ones
        fitted = result["intensity"].sel(line=line).isel(time=0).values
        r = np.corrcoef(fitted[converged], arrays[f"{line}_intensity"][converged])[0, 1]
        assert r > 0.9, (line, r)
    # progress: from 0 to 1 task by task (three chunks of rows, ~160 tasks), never backwards
    assert reported[0] == 0.0 and reported[-1] == 1.0 and np.all(np.diff(reported) >= 0)
    assert len(set(reported)) > 10
    assert fit_window(context, ENTRY, 0, FitOptions()) is result  # cached


def test_a_lock_and_bounds_change_the_model(context):
    data = prepared(context, ENTRY, 0)
    spectrum = spectrum_at(data, 30, 30)
    options = FitOptions(locks=(("o_iii_2", "o_iii_1", None),), bounds=(("width", (0.3, 0.5)),))
    fit = fit_pixel(spectrum, window_model(data, options))
    offset = fit.params["o_iii_2_center"] - fit.params["o_iii_1_center"]
    assert offset == pytest.approx(703.87 - 702.70, abs=1e-9)  # the rest wavelengths' difference
    assert all(0.3 <= fit.params[f"{line}_width"] <= 0.5 for line in LINES)
    with pytest.raises(OptionError, match="cannot follow itself"):
        window_model(data, FitOptions(locks=(("o_iii_1", "o_iii_1", 0.1),)))


def test_eis_windows_get_their_own_line_and_the_corrected_wavelength():
    wave = np.linspace(192.0, 192.8, 36)
    ds = xr.Dataset(
        coords={"wavelength": wave}, attrs={"window": "Fe XII 192.394", "format": "eis"}
    )
    assert window_lines(ds) == {"Fe XII 192.394": 192.394}  # the accessor's eis_line
    model = window_model(ds, FitOptions())
    assert dict(model.bounds)["width"] == (0.01, 0.2)  # EIS lines are ~0.03 A wide
    with pytest.raises(OptionError, match="names no line"):
        window_lines(ds.assign_attrs(window="nothing"))
    with pytest.raises(OptionError, match="no catalog line in 192.000-192.800"):
        window_lines(ds.assign_attrs(format="spice"))  # no SPICE catalog line there
    # a pixel whose corrected wavelength is the table's minus 0.05 A (wave_corr)
    one = line_model({"a": 192.394}, bounds={"width": (0.01, 0.2)})
    truth = one.expand([[100.0, 192.42, 0.03, 5.0]])
    values, _ = evaluate(one, truth, wave)
    spectrum = Spectrum((0, 0), wave, 0.05, values[0], np.ones(36), np.zeros(36, bool), None)
    fit = fit_pixel(spectrum, one)
    assert fit.params["a_center"] == pytest.approx(192.42 - 0.05, abs=1e-9)


# ------------------------------------------------------------------ the page


def test_the_page_fits_the_demo_window(page, maps):
    result, _ = maps
    assert page.entry.value == ENTRY and page.window.value == 0
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.line.options == LINES and page.options == FitOptions(
        bounds=tuple((k, spice_data.default_bounds("spice")[k]) for k in page.bounds)
    )
    np.testing.assert_array_equal(page.result["parameters"].values, result["parameters"].values)
    titles = {kind: pipe.data[1] for kind, pipe in page._map_pipes.items()}
    assert titles["intensity"] == "Intensity o_iii_1" and titles["status"] == "Status"
    assert page.position == (48, 24)  # the middle pixel, fitted with the maps' model
    assert "converged" in page.status.object and "pixel y=48, x=24" in page.status.object
    drawn = hv.render(page.maps_pane.object, backend="bokeh")
    assert drawn is not None


def test_a_click_fits_that_pixel_as_the_maps_did(page):
    settled(lambda: page.taps["velocity"].event(x=17.5, y=40.2))  # x 17, y 40
    assert page.position == (40, 17)
    at = page.result.isel(time=0, y=40, x=17)
    np.testing.assert_array_equal(list(page.map_fit.params.values()), at["parameters"].values)
    assert page.pixel_fit is page.map_fit and page._marker_pipe.data == (40, 17)
    spectrum = hv.render(page.spectrum_pane.object, backend="bokeh")
    assert spectrum.title.text == "Spectrum at y=40, x=17"
    assert "| o_iii_1 |" in page.table.object
    settled(lambda: setattr(page.line, "value", "mg_ix_1"))
    assert page._map_pipes["width"].data[1] == "Width σ (Å) mg_ix_1"


def test_refit_with_a_lock_then_a_bad_one(page):
    page.lock.value = True
    page.lock_b.value, page.lock_a.value = "o_iii_2", "o_iii_1"
    page.lock_offset.value = 1.2
    settled(lambda: setattr(page.refit_button, "clicks", page.refit_button.clicks + 1))
    fit = page.pixel_fit
    assert fit is not page.map_fit and page.position == (40, 17)
    assert fit.params["o_iii_2_center"] - fit.params["o_iii_1_center"] == pytest.approx(1.2)
    assert "Refit at y=40, x=17" in page.table.object and "locked to o_iii_1" in page.table.object
    page.lock_b.value = "o_iii_1"  # a line locked to itself: an alert, the refit kept
    asyncio.run(page.refit())
    assert "cannot follow itself" in page.banners.alert.object and page.pixel_fit is fit
    page.lock.value = False
    asyncio.run(page.refit())
    assert not page.banners.alert.visible


def test_another_window_and_a_window_fit_with_options(page):
    settled(lambda: setattr(page.window, "value", 1))
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.line.options == ["ne_viii_1"] and page.model.lines == ("ne_viii_1",)
    page.background.value = "linear"
    asyncio.run(page.fit())
    assert page.options.background == "linear" and "slope" in page.result
    assert page.progress.value == 100 and not page.progress.visible


# ------------------------------------------------------------------ in a browser


@pytest.mark.browser
def test_maps_render_and_a_click_shows_the_spectrum_and_its_fit(
    demo_server, chromium, find_plot, painted, tmp_path
):
    page = chromium.new_page(viewport={"width": 1600, "height": 1600})
    page.goto(demo_server)
    page.locator(".bk-tab", has_text="SPICE").click()
    status = page.locator(".beamcat-spice-status")
    expect(status).to_contain_text("pixel y=48, x=24")
    intensity = find_plot(page, "Intensity o_iii_1")
    assert intensity["x"] == [0, 48] and intensity["y"] == [96, 0]  # pixels, row 0 on top
    assert painted(page, intensity, min_std=0.02) > 0.02
    find_plot(page, "Status")
    # the middle pixel's spectrum: the model, three lines and the background drawn
    find_plot(page, "Spectrum at y=48, x=24", ready=lambda p: p["lines"] == 5)

    # a click on pixel (row 20, column 30) of the velocity map: that pixel's fit
    velocity = find_plot(page, "Velocity (km/s) o_iii_1")
    page.mouse.click(
        velocity["left"] + 30.5 * velocity["width"] / 48,
        velocity["top"] + 20.5 * velocity["height"] / 96,
    )
    spectrum = find_plot(page, "Spectrum at y=20, x=30", ready=lambda p: p["lines"] == 5)
    find_plot(page, "Residuals Spectrum at y=20, x=30")
    expect(status).to_contain_text("pixel y=20, x=30")
    expect(page.locator(".beamcat-spice-table")).to_contain_text("mg_ix_1")
    assert painted(page, spectrum, min_std=0.02) > 0.02

    # that pixel refitted with O III 703.87 locked to O III 702.70 (the last line and the
    # first are the lock's defaults: pick the middle one): the maps' fit drawn grey beside it
    page.get_by_label("Centre of", exact=True).select_option("o_iii_2")
    lock = page.locator(".beamcat-spice-lock input")
    lock.check()
    expect(lock).to_be_checked()
    page.get_by_role("button", name="Refit pixel").click()
    find_plot(page, "Refit at y=20, x=30", ready=lambda p: p["lines"] == 6)
    expect(page.locator(".beamcat-spice-table")).to_contain_text("o_iii_2 locked to o_iii_1")
    page.screenshot(path=tmp_path / "spice.png", full_page=True)


def test_the_page_on_a_real_eis_raster(shared_data, tmp_path):
    """eispac's test observation, Fe XII 192.41 window (81 x 25 pixels): one line + constant."""
    catalog = tmp_path / "catalog.yaml"
    source = shared_data / "eispac_eis/eis_20210306_064444.data.h5"
    add_source(catalog, "eis", source, format="eis", options={"window": "Fe XII 192"})
    page = SpicePage(AppState(CatalogContext(catalog)))
    asyncio.run(page._fill_entries())
    assert not page.banners.alert.visible, page.banners.alert.object
    assert page.entry.options == ["eis"] and len(page.window.options) > 1  # the file's windows
    assert page.model.lines == ("Fe XII 192.410",)  # the window's own line (no catalog line)
    assert (page.bounds["width"][0].value, page.bounds["width"][1].value) == (0.01, 0.2)
    status = page.result["status"].values
    assert np.isin(status, [s.value for s in FitStatus]).all()  # every pixel has a status
    assert (status == FitStatus.CONVERGED).mean() > 0.9
    # the middle pixel: fitted on the window's wavelength table as the maps were, its centre
    # at the corrected wavelength (- wave_corr) the maps hold
    i, j = page.position
    at = page.result.isel(y=i, x=j)
    fit = page.map_fit
    np.testing.assert_array_equal(list(fit.errors.values()), at["parameter_errors"].values)
    line = "Fe XII 192.410"
    assert fit.params[f"{line}_center"] == pytest.approx(float(at["center"].sel(line=line)))
    assert fit.spectrum.shift == pytest.approx(float(at["wave_corr"]), abs=0)
    assert fit.velocity(line)[0] == pytest.approx(float(at["velocity"].sel(line=line)), rel=1e-9)
