"""A small catalog with one entry per quick-look kind, and one broken entry."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import tifffile
from playwright.sync_api import expect, sync_playwright

from beamcat.catalog.build import add_source
from beamcat.catalog.demo import CATALOG_NAME
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
    # the log's clock wrote UTC (said, so no naive-time warning)
    add_source(
        cat, "temp", folder / "temp.csv", format="temperature-log", options={"timezone": "UTC"}
    )
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


#: how long a browser test waits for a state (page drawn, ROI adopted, replay done) before it
#: fails. Generous on purpose: the tests wait for states, never for time, so a long limit
#: costs nothing when the machine is idle and keeps a loaded CI machine from failing them.
STATE_TIMEOUT_S = 120
expect.set_options(timeout=STATE_TIMEOUT_S * 1000)


class _Browser:
    """A Playwright browser whose pages wait `STATE_TIMEOUT_S` for elements to act on."""

    def __init__(self, browser):
        self.browser = browser

    def new_page(self, **options):
        page = self.browser.new_page(**options)
        page.set_default_timeout(STATE_TIMEOUT_S * 1000)
        return page


@pytest.fixture
def chromium():
    """Debian's chromium driven by Playwright (``playwright install`` cannot download here)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) absent")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield _Browser(browser)
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
        deadline = time.monotonic() + STATE_TIMEOUT_S
        while True:  # wait for the state "server answers", polling
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=10).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"server not up after {STATE_TIMEOUT_S} s:\n{log.read_text()}")
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def serving():
    """``with serving(catalog, folder) as url:`` the app served from a subprocess."""
    return _serving


@pytest.fixture(scope="session")
def demo_server(demo_dir, tmp_path_factory):
    """The app on the demo catalog, one server for the session's tests (they only read)."""
    with _serving(demo_dir / CATALOG_NAME, tmp_path_factory.mktemp("demo_server")) as url:
        yield url


def _at(plot: dict, shape: tuple, x: float, y: float) -> tuple[float, float]:
    """Page position of image pixel coordinates (x, y) in a plot of an image of `shape` (h, w)."""
    return (
        plot["left"] + x * plot["width"] / shape[1],
        plot["top"] + y * plot["height"] / shape[0],
    )


def _drag(page, plot: dict, start: tuple, end: tuple, shape: tuple, *, shift: bool = False):
    """Drag the mouse from `start` to `end` (image pixels) on a plotted image of `shape` (h, w).

    `plot` holds the plot frame's page position and size (left, top, width,
    height), as `find_plot` returns it. With `shift`, bokeh 3's BoxEditTool draws
    a new box; without, a drag inside a box moves it and one on a resize handle's
    edge resizes it.
    """
    a, b = _at(plot, shape, *start), _at(plot, shape, *end)
    page.mouse.move(*a)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 1.0):
        page.mouse.move(*(p + f * (q - p) for p, q in zip(a, b, strict=True)))
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def _draw_box(page, plot: dict, box: tuple, shape: tuple) -> None:
    """Shift+drag `box` (x, y, w, h in image pixels) on a plotted image of `shape` (h, w)."""
    x, y, w, h = box
    _drag(page, plot, (x, y), (x + w, y + h), shape, shift=True)


@pytest.fixture(scope="session")
def draw_box():
    """``draw_box(page, plot, (x, y, w, h), (height, width))``: a ROI drawn with the mouse."""
    return _draw_box


@pytest.fixture(scope="session")
def drag():
    """``drag(page, plot, start, end, (height, width), shift=False)``: a mouse drag on an image."""
    return _drag


#: every titled plot the browser draws: title, plot frame (page px), axis ranges, the
#: active drag tool, the number of visible lines, of paths in visible multi-lines (ring
#: overlays: one path per ring) and the x data of visible scatters
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
                paths: visible(v, 'MultiLine').reduce(
                  (n, r) => n + column(r.data_source, r.glyph.xs).length, 0),
                scatter: visible(v, 'Scatter').map(r => column(r.data_source, r.glyph.x))});
    }
    for (const c of v.child_views || []) walk(c);
  };
  for (const v of Bokeh.index.roots || Object.values(Bokeh.index)) walk(v);
  return out;
}"""


def _alerts(page) -> list[str]:
    """What the page's alerts say (to show in a failure message)."""
    return page.locator(".alert").all_inner_texts()


def _wait_for(page, check, *, timeout: float = STATE_TIMEOUT_S, what: str = "state"):
    """Poll `check()` until it returns something truthy (returned); fail after `timeout` s.

    This waits for a state of the page, not for a time: on an idle machine it
    returns at the first poll that sees the state. The failure message shows the
    last value `check` returned and the page's alerts.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}: not reached in {timeout} s (last: {value!r}); alerts: {_alerts(page)}"
            )
        page.wait_for_timeout(100)


@pytest.fixture(scope="session")
def wait_for():
    """``wait_for(page, check, timeout=..., what=...)``: poll a page state until it holds."""
    return _wait_for


def _find_plot(page, title_start: str, *, timeout: float = STATE_TIMEOUT_S, ready=lambda p: True):
    """The plot whose title starts with `title_start`, once drawn and `ready(plot)`."""
    found = []

    def check():
        found[:] = [p for p in page.evaluate(PLOTS_JS) if p["title"].startswith(title_start)]
        return found[0] if found and ready(found[0]) else None

    try:
        return _wait_for(page, check, timeout=timeout, what=f"plot {title_start!r}")
    except pytest.fail.Exception:
        plots = found or page.evaluate(PLOTS_JS)
        pytest.fail(f"no ready plot titled {title_start!r}: {plots}; alerts: {_alerts(page)}")


@pytest.fixture(scope="session")
def find_plot():
    """``find_plot(page, title_start, timeout=..., ready=...)``: a drawn plot's geometry, data."""
    return _find_plot


#: the ROI boxes a titled plot holds in the browser: per box [x0, y0, x1, y1] (the Quad glyphs
#: whose source has a ``name`` column, i.e. `RoiEditor.boxes`), and the resize handles
#: (BoxAnnotations named "resize <ROI>") as name -> [left, top, right, bottom] when visible
ROIS_JS = """(title) => {
  const column = (source, spec) => {
    const data = source.data;
    const key = spec && spec.field !== undefined ? spec.field : spec;
    const values = data instanceof Map ? data.get(key) : data[key];
    return values === undefined ? null : Array.from(values);
  };
  let out = null;
  const walk = (v) => {
    if (out === null && v.frame && v.model.title && v.model.title.text.startsWith(title)) {
      const boxes = [];
      for (const r of v.model.renderers) {
        if (!(r.glyph && r.glyph.type === 'Quad' && r.visible)) continue;
        if (column(r.data_source, 'name') === null) continue;
        const [l, t, rr, b] = ['left', 'top', 'right', 'bottom'].map(
          k => column(r.data_source, r.glyph[k]));
        for (let i = 0; i < l.length; i++) boxes.push([Math.min(l[i], rr[i]),
          Math.min(t[i], b[i]), Math.max(l[i], rr[i]), Math.max(t[i], b[i])]);
      }
      const handles = {};
      for (const a of v.model.center) {
        if (a.type === 'BoxAnnotation' && a.name && a.name.startsWith('resize ') && a.visible)
          handles[a.name.slice(7)] = [a.left, a.top, a.right, a.bottom];
      }
      out = {boxes, handles};
    }
    for (const c of v.child_views || []) walk(c);
  };
  for (const v of Bokeh.index.roots || Object.values(Bokeh.index)) walk(v);
  return out;
}"""


@pytest.fixture(scope="session")
def browser_rois():
    """``browser_rois(page, title_start)``: the ROI boxes and resize handles BokehJS holds."""
    return lambda page, title_start: page.evaluate(ROIS_JS, title_start)


def _painted(page, plot, *, min_std: float, timeout: float = STATE_TIMEOUT_S) -> float:
    """The std of a plot's RGB pixels once bokeh has painted more than a flat colour.

    `plot` is a plot frame as `find_plot` returns it, or a Playwright locator of
    the element to look at. Screenshots are taken until the pixels vary by more
    than `min_std` (the canvas is painted) or `timeout` passes; returns the last
    std, for the test to assert on.
    """
    if isinstance(plot, dict):
        clip = {"x": plot["left"], "y": plot["top"]} | {k: plot[k] for k in ("width", "height")}
        shoot, what = (lambda: page.screenshot(clip=clip)), plot["title"]
    else:
        shoot, what = plot.screenshot, str(plot)
    last = []

    def check():
        pixels = plt.imread(io.BytesIO(shoot()))
        last[:] = [float(pixels[..., :3].std())]
        return last[0] > min_std

    with contextlib.suppress(pytest.fail.Exception):  # the test asserts on the value
        _wait_for(page, check, timeout=timeout, what=f"{what} painted")
    return last[0]


@pytest.fixture(scope="session")
def painted():
    """``painted(page, plot, min_std=...)``: pixel std of a plot once painted (polls)."""
    return _painted
