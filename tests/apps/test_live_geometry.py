"""The live page's geometry panel without a browser: q-curves and the integration as frames arrive.

The geometry typed in is checked against pyFAI's own Fit2D conversion and
`beam_centre`; the curves against pyFAI's 2θ and q at their vertices; the
integration of the replayed real LaB6 recording against pyFAI's ``integrate1d`` of
the same accumulated image with the detector gaps masked (NumPy: the latest raw
frame < 0), so the panel adds no arithmetic of its own.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import beamcat
from beamcat.analyses.calibrant import beam_centre
from beamcat.analyses.geometry import write_poni
from beamcat.apps.diffraction_data import Q_VALUES, manual_geometry, parse_q_values
from beamcat.apps.live_page import LivePage
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.build import add_source
from beamcat.catalog.cbor_stream import replay
from beamcat.catalog.demo import CATALOG_NAME, photon
from beamcat.errors import OptionError
from beamcat.live.pipeline import LivePipeline

#: a geometry for the FemtoMAX LaB6 recording read off its rings: beam centre at the
#: beam stop, the first ring (LaB6 100 at 8048 eV) about 168 px out
LAB6 = {"distance": 74.0, "x": 205.0, "y": 375.0}
SHAPE = (831, 1475)
#: float64 sums here vs pyFAI's float32 accumulation of the same pixels per bin
RTOL = 1e-5


@pytest.fixture(scope="module")
def catalog(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("live_geometry")
    cat = folder / "catalog.yaml"
    files = sorted((shared_data / "drp_femtomax").iterdir())
    add_source(cat, "femtomax_lab6", files, format="cbor-stream")
    return CatalogContext(cat)


def _enter(panel, distance, x, y):
    panel.centre_x.value, panel.centre_y.value = x, y
    panel.distance.value = distance  # last: the geometry is complete now


def test_a_typed_geometry_is_pyfai_fit2d():
    geometry = manual_geometry(74.0, 205.0, 375.0, 172.0, 8048.0)
    ai = geometry.integrator
    fit2d = ai.getFit2D()
    assert fit2d["directDist"] == pytest.approx(74.0) and fit2d["pixelX"] == pytest.approx(172.0)
    assert (fit2d["centerX"], fit2d["centerY"]) == pytest.approx((205.0, 375.0))
    # in beamcat's pixel-index convention the centre is half a pixel less
    assert beam_centre(geometry, SHAPE) == pytest.approx((204.5, 374.5))
    assert geometry.energy == pytest.approx(8048.0)
    with pytest.raises(OptionError, match="distance"):
        manual_geometry(-1.0, 0.0, 0.0, 172.0, 8048.0)
    with pytest.raises(OptionError, match="energy"):
        manual_geometry(74.0, 0.0, 0.0, 172.0, 0.0)
    assert parse_q_values(" 15.1,21.4;  26 ") == (15.1, 21.4, 26.0)
    with pytest.raises(OptionError, match="'x1'"):
        parse_q_values("15.1, x1")


def test_the_pipeline_reports_the_gaps_of_the_latest_raw_frame(shared_data):
    # the hook the panel uses: the negative pixels (Pilatus gaps -1/-2) of the raw frame,
    # which the processed image holds as 0 with mask_negative
    pipeline = LivePipeline(mode="image", mask_negative=True)
    assert pipeline.invalid_pixels() is None
    frame = None
    for event in replay(sorted((shared_data / "drp_femtomax").iterdir()), realtime=False):
        pipeline.process(event)
        if event.kind == "image":
            frame = event.frame
            break
    np.testing.assert_array_equal(pipeline.invalid_pixels(), frame < 0)
    assert pipeline.snapshot()["last"][frame < 0].max() == 0  # masked in the processed image


def test_replayed_lab6_gets_q_curves_and_its_integration(catalog, shared_data):
    page = LivePage(AppState(catalog))
    page.source.value = "femtomax_lab6"
    page.realtime.value = False
    panel = page.geometry
    assert panel.geometry is None and "No geometry" in panel.status.object
    _enter(panel, **LAB6)
    # no energy typed and no frame yet: the geometry has no wavelength, no curves yet
    assert panel.geometry is not None and panel.geometry.wavelength is None
    assert not page.alert.visible and panel.curves == [] and "No energy yet" in panel.status.object

    assert page.start_replay() is not None
    page.wait()
    assert not page.alert.visible, page.alert.object
    # the stream header's energy (8048 eV) gave the wavelength: LaB6 rings on the detector
    assert panel.geometry.energy == pytest.approx(8048.0)
    assert [c.label for c in panel.curves[:2]] == ["LaB6 (1 0 0)", "LaB6 (1 1 0)"]
    ai = panel.geometry.integrator
    for curve in panel.curves:  # each polyline on its ring's 2θ (interpolation: < 1e-3 deg)
        xy = curve.xy[np.isfinite(curve.xy[:, 0])]
        assert np.abs(np.degrees(ai.tth(xy[:, 1], xy[:, 0])) - curve.tth).max() < 1e-3
    curves, region = panel._overlay_pipe.data  # what the image overlay draws
    assert curves == panel.curves and region is None

    # the 1D curve: pyFAI on the accumulated image, the gaps of the latest raw frame masked
    image = page.view["image"]
    last = beamcat.open_dataset(shared_data / "drp_femtomax").counts.isel(frame=-1).values
    gaps = last < 0
    expected = ai.integrate1d(
        image, 1000, unit="q_nm^-1", mask=gaps, method=("no", "histogram", "cython")
    )
    pattern = panel.pattern
    np.testing.assert_allclose(pattern["q"].values, expected.radial, rtol=1e-12)
    assert pattern["count"].sum() == (~gaps).sum()  # every pixel but the gaps, once
    # a pixel on a bin edge may fall on the other side in pyFAI's float32 positions: the
    # bins whose pixels are the same (same count) have the same intensity, and those are
    # nearly all of them
    same = (pattern["count"].values == expected.count) & (expected.count > 0)
    assert same.sum() >= 0.99 * (expected.count > 0).sum()
    np.testing.assert_allclose(
        pattern["intensity"].values[same], expected.intensity[same], rtol=RTOL
    )
    plot = panel.pattern_pane.object
    assert "30 frames accumulated" in plot.opts.get().kwargs["title"]
    np.testing.assert_allclose(plot.Spikes.I.dimension_values(0), [c.q for c in panel.curves])

    # zoomed on a ROI: the curves are clipped to it
    page.roi_editor.set_rois({"ring": (200, 360, 40, 40)})
    page.zoom.value = "ring"
    curves, region = panel._overlay_pipe.data
    assert region == (200, 360, 40, 40)
    page.zoom.value = "whole image"
    assert panel._overlay_pipe.data[1] is None

    # typed q values instead of a calibrant: their rings, at their q (pyFAI's q map)
    panel.calibrant.value = Q_VALUES
    panel.q_values.value = "15.1, 21.4"
    assert [round(c.q, 6) for c in panel.curves] == [15.1, 21.4]
    for curve in panel.curves:
        xy = curve.xy[np.isfinite(curve.xy[:, 0])]
        assert np.abs(ai.qFunction(xy[:, 1], xy[:, 0]) - curve.q).max() < 2e-3

    # another distance: the last image is integrated again with it
    panel.distance.value = 80.0
    assert panel.geometry.integrator.dist == pytest.approx(0.080)
    assert panel.pattern["q"].values[0] != pattern["q"].values[0]


def test_bad_geometry_inputs_are_shown_and_the_page_goes_on(catalog, tmp_path):
    page = LivePage(AppState(catalog))
    page.source.value = "femtomax_lab6"
    panel = page.geometry
    _enter(panel, 74.0, 205.0, 375.0)
    panel.energy.value = 8048.0
    assert not page.alert.visible and panel.curves

    panel.pixel.value = -172.0
    assert "pixel size" in page.alert.object
    panel.pixel.value = 172.0
    assert not page.alert.visible

    panel.poni.value = str(tmp_path / "missing.poni")
    assert "missing.poni" in page.alert.object
    # a PONI of another detector is refused, naming it and both shapes
    small = manual_geometry(74.0, 50.0, 50.0, 172.0, 8048.0).integrator.get_config()
    small["detector_config"] = {"pixel1": 172e-6, "pixel2": 172e-6, "max_shape": [100, 100]}
    write_poni(small, tmp_path / "small.poni")
    panel.poni.value = str(tmp_path / "small.poni")
    assert "small.poni" in page.alert.object and "(100, 100)" in page.alert.object
    panel.poni.value = ""
    panel.calibrant.value = Q_VALUES
    panel.q_values.value = "15, abc"
    assert "'abc'" in page.alert.object
    panel.q_values.value = "15"
    assert not page.alert.visible and len(panel.curves) == 1


def test_a_recording_entry_with_a_poni_fills_it_in(demo_dir):
    # the demo's femtomax_scan carries its PONI (poni=): choosing it fills the PONI input
    page = LivePage(AppState(CatalogContext(demo_dir / CATALOG_NAME)))
    page.source.value = "femtomax_scan"
    panel = page.geometry
    assert panel.poni.value.endswith("scan_0007.poni")
    assert not page.alert.visible, page.alert.object
    # its PONI puts InSb 111 (d = 6.4794 / sqrt(3) Angstrom) through the demo's Bragg spot
    assert panel.geometry.energy == pytest.approx(8048.0) and panel.curves == []  # no LaB6
    panel.calibrant.value = Q_VALUES
    panel.q_values.value = f"{20 * np.pi * np.sqrt(3) / 6.4794:.6f}"
    [curve] = panel.curves
    y, x = photon.SPOT[:2]
    xy = curve.xy[np.isfinite(curve.xy[:, 0])]
    assert np.hypot(xy[:, 0] - x, xy[:, 1] - y).min() < 1.0  # pixels
    panel.poni.value = "/typed/by/the/user.poni"  # a typed PONI is the user's: kept
    asyncio.run(panel.follow_entry((256, 256), None))
    assert panel.poni.value == "/typed/by/the/user.poni" and "user.poni" in page.alert.object
