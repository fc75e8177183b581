"""The diffraction page without a browser, on the demo's CeO2 image and the real Dioptas one.

What the page shows is compared with pyFAI run in the test on the same image and
mask (its ``integrate1d``/``integrate2d`` with the same bins, unit and
corrections; no pixel splitting, as the page's), with the demo's planted truth
(the CeO2 rings on the detector) and with NumPy (the mask), so the page adds no
arithmetic of its own.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from beamcat.analyses.geometry import write_poni
from beamcat.apps._jobs import Jobs
from beamcat.apps.diffraction_data import build_mask, manual_geometry, ring_table
from beamcat.apps.diffraction_page import NO_RINGS, PONI_FILE, DiffractionPage
from beamcat.apps.state import AppState, CatalogContext
from beamcat.catalog.build import add_source
from beamcat.catalog.demo import CATALOG_NAME, read_truth
from beamcat.rois import Rect

#: pyFAI "no splitting" histogram, the page's integration method
PYFAI_METHOD = ("no", "histogram", "cython")
#: float32 (pyFAI) vs float64 sums of the same pixels per bin: rounding only
RTOL = 1e-6


@pytest.fixture(scope="module")
def context(demo_dir):
    return CatalogContext(demo_dir / CATALOG_NAME)


@pytest.fixture
def dpage(context):
    page = DiffractionPage(AppState(context))
    asyncio.run(page._fill_entries())
    return page


def _pyfai(page, unit="2th_deg"):
    """pyFAI's pattern of the page's image and mask (flipped when its PONI wants: Dioptas)."""
    ai = page.geometry.integrator
    flip = slice(None, None, -1 if page.geometry.flip else 1)
    return ai.integrate1d(
        page.image.values[flip],
        page.npt.value,
        unit=unit,
        mask=page.mask[flip],
        method=PYFAI_METHOD,
        correctSolidAngle=True,
    )


def _assert_same_pattern(pattern, expected, radial):
    np.testing.assert_allclose(pattern[radial].values, expected.radial, rtol=1e-12)
    filled = pattern["count"].values > 0  # empty bins: NaN here, 0 in pyFAI
    np.testing.assert_allclose(
        pattern["intensity"].values[filled], expected.intensity[filled], rtol=RTOL
    )


def test_the_ceo2_demo_image_gets_its_rings_pattern_and_cake(dpage, demo_dir):
    assert dpage.entry.value == "diffraction_ceo2"  # the first entry carrying a PONI
    assert not dpage.alert.visible, dpage.alert.object
    assert dpage.state.entry is None  # the page's default is not a user's selection
    assert dpage.image.shape == (407, 487)

    # the rings drawn are the CeO2 reflections the demo put on the detector
    scalars, _ = read_truth(demo_dir / "diffraction")
    np.testing.assert_allclose([c.tth for c in dpage.curves], scalars["ring_tth_deg"], atol=1e-9)
    # each ring's polyline lies on its 2θ: pyFAI's 2θ at the vertices (pixel centres at
    # integer indices), within the linear interpolation between pixel centres (1e-3 deg)
    ai = dpage.geometry.integrator
    for curve in dpage.curves:
        xy = curve.xy[np.isfinite(curve.xy[:, 0])]
        tth = np.degrees(ai.tth(xy[:, 1], xy[:, 0]))
        assert np.abs(tth - curve.tth).max() < 1e-3, curve.label
    drawn = dpage._rings_pipe.data  # what the overlay on the image draws
    assert [c.label for c in drawn][:2] == ["CeO2 (1 1 1)", "CeO2 (0 0 2)"]

    # the mask is the module gap (-2) only; the 1D pattern and the cake are pyFAI's
    np.testing.assert_array_equal(dpage.mask, dpage.image.values < 0)
    assert dpage.mask.sum() == 17 * 487
    _assert_same_pattern(dpage.pattern, _pyfai(dpage), "tth")
    assert dpage.pattern["count"].sum() == (~dpage.mask).sum()  # every valid pixel, once
    cake = ai.integrate2d(
        dpage.image.values,
        1000,
        360,
        unit="2th_deg",
        mask=dpage.mask,
        method=PYFAI_METHOD,
        correctSolidAngle=True,
    )
    filled = dpage.cake["count"].values > 0
    np.testing.assert_allclose(dpage.cake["chi"].values, cake.azimuthal, rtol=1e-12)
    np.testing.assert_allclose(
        dpage.cake["intensity"].values[filled], cake.intensity[filled], rtol=RTOL
    )
    # the plots: the pattern with the rings as spikes, the cake, the status line
    spikes = dpage.pattern_pane.object.Spikes.I
    np.testing.assert_allclose(spikes.dimension_values(0), [c.tth for c in dpage.curves])
    assert "14 CeO2 rings" in dpage.status.object and "30000 eV" in dpage.status.object


def test_mask_threshold_and_drawn_regions_change_the_pattern(dpage):
    image = dpage.image.values
    high = float(np.percentile(image, 99.5))
    dpage.high.value = high
    dpage.regions.set_rois({"beam stop": Rect(140, 95, 30, 25)})
    expected = (image < 0) | (image > high)
    expected[95:120, 140:170] = True
    np.testing.assert_array_equal(dpage.mask, expected)
    assert dpage.pattern["count"].sum() == (~expected).sum()
    _assert_same_pattern(dpage.pattern, _pyfai(dpage), "tth")
    assert f"{int(expected.sum())} pixels masked" in dpage.status.object


def test_q_unit_energy_and_no_rings(dpage):
    dpage.unit.value = "q (nm⁻¹)"
    _assert_same_pattern(dpage.pattern, _pyfai(dpage, "q_nm^-1"), "q")
    spikes = dpage.pattern_pane.object.Spikes.I
    np.testing.assert_allclose(spikes.dimension_values(0), [c.q for c in dpage.curves])

    # another energy: the rings move to the 2θ of the same d at that wavelength
    dpage.energy.value = 20000.0
    assert round(dpage.geometry.energy) == 20000
    expected = ring_table(dpage.geometry, dpage.image.shape, calibrant="CeO2")
    assert [c.tth for c in dpage.curves] == expected["tth"].values.tolist()
    assert dpage.curves[0].tth > 1.4 * 7.596  # CeO2 (1 1 1): 7.596 deg at 30 keV

    dpage.calibrant.value = NO_RINGS
    assert dpage.curves == [] and dpage._rings_pipe.data == []


def test_a_poni_file_and_its_errors(dpage, tmp_path):
    # a PONI typed in: one of another detector is refused, naming the file and both shapes
    other = manual_geometry(100.0, 50.0, 50.0, 172.0, 12000.0)
    detector = other.integrator.get_config() | {
        "detector_config": {"pixel1": 172e-6, "pixel2": 172e-6, "max_shape": [100, 100]}
    }
    write_poni(detector, tmp_path / "small.poni")
    dpage.source.value = PONI_FILE
    dpage.poni.value = str(tmp_path / "missing.poni")
    assert dpage.alert.visible and "missing.poni" in dpage.alert.object
    dpage.poni.value = str(tmp_path / "small.poni")
    assert "small.poni" in dpage.alert.object and "(100, 100)" in dpage.alert.object
    assert dpage.image is not None  # the rest of the page still works

    # the entry's own PONI written elsewhere and typed in: the same geometry, no alert
    write_poni(dpage.entry_geometry, tmp_path / "same.poni")
    dpage.poni.value = str(tmp_path / "same.poni")
    assert not dpage.alert.visible, dpage.alert.object
    assert dpage.geometry == dpage.entry_geometry
    assert len(dpage.curves) == 14


def test_an_entry_without_poni_says_so(dpage):
    dpage.entry.value = "gainmap_pos1"  # it has one
    assert not dpage.alert.visible and dpage.state.entry == "gainmap_pos1"
    dpage.entry.value = "imat_run"  # it has none
    assert "imat_run" in dpage.alert.object and "PONI" in dpage.alert.object
    assert dpage.pattern is None and dpage.image is not None


def test_the_real_dioptas_image_integrates_sharply_only_flipped(shared_data, tmp_path):
    # Real data: the Dioptas CeO2 image on a Pilatus 1M with its PONI, catalogued with
    # poni_flip=1 (Dioptas' view). Flipped, the 1D pattern's strongest peak sits on a CeO2
    # ring (within two bins); unflipped, the rings are smeared and the peak is lower.
    folder = shared_data / "dioptas"
    catalog = tmp_path / "catalog.yaml"
    add_source(
        catalog,
        "ceo2",
        folder / "CeO2_Pilatus1M.tif",
        format="tiff",
        # the camserver clock's zone, said (no naive-time warning)
        options={"poni": folder / "CeO2_Pilatus1M.poni", "poni_flip": 1, "timezone": "UTC"},
    )
    page = DiffractionPage(AppState(CatalogContext(catalog)))
    asyncio.run(page._fill_entries())
    assert not page.alert.visible, page.alert.object
    assert page.geometry.flip and page.flip.value
    flipped = page.pattern["intensity"]
    peak = float(flipped["tth"][int(flipped.argmax())])
    step = float(flipped["tth"][1] - flipped["tth"][0])
    assert min(abs(c.tth - peak) for c in page.curves) < 2 * step

    page.flip.value = False
    assert not page.geometry.flip
    assert float(page.pattern["intensity"].max()) < 0.8 * float(flipped.max())


def test_a_superseded_job_leaves_the_later_result():
    # Two requests of one kind overlap; the first is held in its thread until the second
    # has finished: the first must come back as superseded (None, None), never as a result
    # the page would draw over the later one's.
    errors = {}
    jobs = Jobs(lambda what, message: errors.__setitem__(what, message))
    release = threading.Event()

    def slow():
        assert release.wait(timeout=120), "the second job never finished"
        return "first"

    async def overlap():
        first = asyncio.create_task(jobs.run("load", slow))
        await asyncio.sleep(0)  # the first job is now in its worker thread, held
        second = await jobs.run("load", lambda: "second")
        release.set()
        return await first, second

    assert asyncio.run(overlap()) == ((None, None), (True, "second"))

    async def failing():
        return await jobs.run("load", lambda: 1 / 0)

    assert asyncio.run(failing()) == (False, None)
    assert errors["load"].startswith("ZeroDivisionError")
    assert asyncio.run(jobs.run("load", lambda: 2)) == (True, 2) and errors["load"] is None


def test_build_mask_clips_regions_to_the_image():
    image = np.arange(12.0).reshape(3, 4) - 1
    mask = build_mask(image, low=1.5, regions={"corner": Rect(3, 2, 10, 10)})
    expected = image < 1.5
    expected[2, 3] = True
    np.testing.assert_array_equal(mask, expected)
