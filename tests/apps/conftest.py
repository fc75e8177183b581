"""A small catalog with one entry per quick-look kind, and one broken entry."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from playwright.sync_api import sync_playwright

from beamcat.catalog.build import add_source
from beamcat.catalog.spice import write_spice_l2
from beamcat.catalog.templog import write_temperature_log


@dataclass
class SmallCatalog:
    path: Path
    frames: np.ndarray  # (frame, y, x) uint16 of entry "stack"
    temperatures: np.ndarray  # (time,) degC of entry "temp"
    radiance: np.ndarray  # (time, wavelength, y, x) of entry "spectra", with NaN
    broken: Path  # the file behind entry "broken" (garbage bytes)


def make_small_catalog(folder: Path) -> SmallCatalog:
    """Write a TIFF stack, a temperature log, a SPICE file and a garbage TIFF; catalog them."""
    rng = np.random.default_rng(7)
    frames = rng.integers(100, 1000, size=(6, 40, 60), dtype=np.uint16)
    frames[:, 5, 7] = 60000  # a hot pixel
    tifffile.imwrite(folder / "stack.tif", frames, photometric="minisblack")

    temperatures = 20 + np.linspace(0, 5, 30)
    times = pd.date_range("2024-12-13T14:00:00", periods=30, freq="10s")
    write_temperature_log(folder / "temp.csv", times, temperatures)

    radiance = rng.normal(1.0, 0.1, size=(1, 12, 16, 3)).astype("float32")
    radiance[:, 0] = np.nan  # an all-NaN wavelength bin, as at a window edge
    radiance[:, :, 4] = np.nan  # an all-NaN row along the slit
    window = {"name": "Ne VIII 770", "data": radiance, "wavelength_start": 76.9}
    write_spice_l2(folder / "spice.fits", [window | {"wavelength_step": 0.0095}])

    broken = folder / "broken.tif"
    broken.write_bytes(b"II*\x00" + b"\xff" * 20)

    cat = folder / "catalog.yaml"
    add_source(
        cat,
        "stack",
        folder / "stack.tif",
        format="tiff",
        metadata={"instrument": "IMAT", "sample": "catalyst bed", "run": "42", "description": "x"},
    )
    add_source(cat, "temp", folder / "temp.csv", format="temperature-log")
    add_source(cat, "spectra", folder / "spice.fits", format="spice")
    add_source(cat, "broken", broken, format="tiff")
    return SmallCatalog(cat, frames, temperatures, radiance, broken)


@pytest.fixture
def small_catalog(tmp_path) -> SmallCatalog:
    return make_small_catalog(tmp_path)


# ---------------------------------------------------------------- browser tests

CHROMIUM = Path("/usr/bin/chromium")
#: headless, and no calls home: this machine (and CI) has no internet
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium():
    """Debian's chromium driven by Playwright (``playwright install`` cannot download here)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) absent")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def _serving(catalog: Path, folder: Path) -> Iterator[str]:
    """``python -m beamcat.apps.serve CATALOG --port N`` in a subprocess; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "beamcat.apps.serve", str(catalog), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 40
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"server not up after 40 s:\n{log.read_text()}")
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def serving():
    """``with serving(catalog, folder) as url:`` the app served from a subprocess."""
    return _serving


def _draw_box(page, plot: dict, box: tuple, shape: tuple) -> None:
    """Shift+drag `box` (x, y, w, h in image pixels) on a plotted image of `shape` (h, w).

    `plot` holds the plot frame's page position and size (left, top, width,
    height); bokeh 3's BoxEditTool draws a new box on a shift+drag.
    """

    def at(x, y):
        return (
            plot["left"] + x * plot["width"] / shape[1],
            plot["top"] + y * plot["height"] / shape[0],
        )

    x, y, w, h = box
    page.mouse.move(*at(x, y))
    page.keyboard.down("Shift")
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 1.0):
        page.mouse.move(*at(x + w * f, y + h * f))
    page.mouse.up()
    page.keyboard.up("Shift")


@pytest.fixture(scope="session")
def draw_box():
    """``draw_box(page, plot, (x, y, w, h), (height, width))``: a ROI drawn with the mouse."""
    return _draw_box


#: every titled plot the browser draws: title, plot frame (page px), axis ranges, the
#: active drag tool, the number of visible lines and the x data of visible scatters
PLOTS_JS = """() => {
  const out = [];
  const column = (source, spec) => {
    const data = source.data;
    const key = spec && spec.field !== undefined ? spec.field : spec;
    return Array.from(data instanceof Map ? data.get(key) : data[key]);
  };
  const visible = (v, type) => v.model.renderers.filter(
    r => r.glyph && r.glyph.type === type && r.visible);
  const walk = (v) => {
    if (v.frame && v.model.title !== undefined && v.model.title) {
      const el = v.el.getBoundingClientRect();
      out.push({title: v.model.title.text, left: el.left + v.frame.bbox.x,
                top: el.top + v.frame.bbox.y, width: v.frame.bbox.width,
                height: v.frame.bbox.height,
                x: [v.model.x_range.start, v.model.x_range.end],
                y: [v.model.y_range.start, v.model.y_range.end],
                active: v.model.toolbar.active_drag ? v.model.toolbar.active_drag.type : null,
                lines: visible(v, 'Line').length,
                scatter: visible(v, 'Scatter').map(r => column(r.data_source, r.glyph.x))});
    }
    for (const c of v.child_views || []) walk(c);
  };
  for (const v of Bokeh.index.roots || Object.values(Bokeh.index)) walk(v);
  return out;
}"""


def _find_plot(page, title_start: str, *, timeout: float = 60, ready=lambda plot: True) -> dict:
    """The plot whose title starts with `title_start`, once drawn and `ready(plot)`."""
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        found = [p for p in page.evaluate(PLOTS_JS) if p["title"].startswith(title_start)]
        if found and ready(found[0]):
            return found[0]
        page.wait_for_timeout(200)
    alerts = page.locator(".alert").all_inner_texts()  # what the page said went wrong, if anything
    plots = found or page.evaluate(PLOTS_JS)
    pytest.fail(f"no ready plot titled {title_start!r}: {plots}; alerts: {alerts}")


@pytest.fixture(scope="session")
def find_plot():
    """``find_plot(page, title_start, timeout=60, ready=...)``: a drawn plot's geometry and data."""
    return _find_plot
