"""`beamcat serve` in a real browser: table, quick look on click, error alert, no CDN."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) absent"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(small_catalog, tmp_path):
    """`python -m beamcat.apps.serve CATALOG --port N` in a subprocess; yields its URL."""
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beamcat.apps.serve",
                str(small_catalog.path),
                "--port",
                str(port),
            ],
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


def test_click_an_entry_shows_its_quick_look(server, small_catalog, tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
        expect(stack_row).to_contain_text("6 x 40 x 60", timeout=30_000)
        expect(stack_row).to_contain_text("IMAT")
        expect(page.locator(".tabulator-row", has_text="broken")).to_contain_text("broken.tif")

        stack_row.click()
        quicklook = page.locator(".beamcat-quicklook")
        plot = quicklook.locator(".bk-Figure, .bk-GridPlot").first
        expect(plot).to_be_visible(timeout=30_000)
        expect(quicklook.locator("canvas").first).to_be_visible()
        expect(quicklook).to_contain_text("stack")
        expect(quicklook.locator(".beamcat-attrs")).to_contain_text("catalyst bed")
        page.wait_for_timeout(500)  # let bokeh paint the canvas
        page.screenshot(path=tmp_path / "quicklook.png", full_page=True)
        # the random frames render as grey noise: a blank plot would be one flat colour
        pixels = plt.imread(io.BytesIO(plot.screenshot()))
        assert pixels[..., :3].std() > 0.05

        page.locator(".tabulator-row", has_text="broken").click()
        alert = quicklook.locator(".alert-danger")
        expect(alert.first).to_contain_text(str(small_catalog.broken), timeout=30_000)
        expect(page.locator("#sidebar")).to_contain_text("broken")
        browser.close()
    assert elsewhere == []
