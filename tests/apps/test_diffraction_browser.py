"""The Diffraction page in a real browser, on the demo catalog.

The test opens the page, waits for the CeO2 demo image and counts the ring
paths BokehJS holds over it (the 14 CeO2 reflections on the detector, the
demo's truth); it switches the rings off and waits for them to go.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_rings_appear_over_the_ceo2_demo_image(demo_server, chromium, find_plot, painted, tmp_path):
    page = chromium.new_page(viewport={"width": 1500, "height": 1700})
    page.goto(demo_server)
    page.locator(".bk-tab", has_text="Diffraction").click()
    # the 14 CeO2 reflections on the detector (the demo's ring_tth_deg), one path each
    image = find_plot(page, "diffraction_ceo2: mean image", ready=lambda p: p["paths"] == 14)
    pattern = find_plot(page, "1D pattern of diffraction_ceo2", ready=lambda p: p["lines"] >= 1)
    for plot in (image, pattern):
        assert painted(page, plot, min_std=0.02) > 0.02
    page.screenshot(path=tmp_path / "diffraction.png", full_page=True)

    page.locator(".bk-input-group", has_text="Rings").locator("select").select_option("(none)")
    find_plot(page, "diffraction_ceo2: mean image", ready=lambda p: p["paths"] == 0)
