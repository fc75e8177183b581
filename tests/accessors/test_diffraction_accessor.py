"""``ds.diffraction``: signal and PONI found, each method its analysis' twin, lazily.

What is compared: each accessor method against its function in
`beamcat.analyses` called with the same frames and geometry (identical
results: the accessor only picks), laziness under a scheduler that forbids
computing, and the real Dioptas CeO2 image opened with ``poni=`` and
``poni_flip=True`` against pyFAI's own integration of the flipped image.
"""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
import beamcat.accessors  # noqa: F401  (registers the accessors)
from beamcat.analyses.azimuthal import integrate1d, integrate2d, median1d, sigma_clip1d
from beamcat.analyses.calibrant import beam_centre, calibrate, rings
from beamcat.analyses.geometry import as_geometry, pixel_maps
from beamcat.catalog.demo import diffraction as demo
from beamcat.errors import OptionError

NPT = 200


@pytest.fixture(scope="module")
def ceo2(tmp_path_factory) -> xr.Dataset:
    """The demo's CeO2 image, opened with its PONI (poni=, as the catalog entry does)."""
    folder = tmp_path_factory.mktemp("demo") / "diffraction"
    (entry,) = demo.write(folder, np.random.default_rng([0, 5]))
    return beamcat.open_dataset(entry.source, **entry.options)


@pytest.fixture
def stack(ceo2) -> xr.Dataset:
    """Three frames (the image, twice it, three times it) in chunks of two, dask-backed."""
    counts = ceo2.counts.values[0]
    frames = np.stack([counts, 2 * counts, 3 * counts]).astype(np.float64)
    frames[:, counts < 0] = -2  # the gap stays flagged
    data = da.from_array(frames, chunks=(2, *counts.shape))
    return xr.Dataset({"counts": (("frame", "y", "x"), data)}, attrs=ceo2.attrs)


def test_integrations_are_their_functions_on_the_signal_and_stay_lazy(
    stack, raise_if_dask_computes
):
    mask = stack.counts.values[0] < 0  # a mask is an input of the bin table: concrete
    calls = {
        "integrate1d": (integrate1d, {"npt": NPT, "mask": mask, "unit": "q_nm^-1"}),
        "integrate2d": (integrate2d, {"npt_rad": NPT, "npt_azim": 36, "mask": mask}),
        "median1d": (median1d, {"npt": NPT, "mask": mask}),
        "sigma_clip1d": (sigma_clip1d, {"npt": NPT, "mask": mask}),
    }
    for name, (function, options) in calls.items():
        with raise_if_dask_computes():  # the accessor builds a graph, nothing more
            out = getattr(stack.diffraction, name)(**options)
        assert all(isinstance(v.data, da.Array) for v in out.data_vars.values()), name
        # the function with the picked signal and the data's own PONI: the same Dataset
        reference = function(stack.counts.assign_attrs(stack.attrs), stack.attrs["poni"], **options)
        xr.testing.assert_identical(out.compute(), reference.compute())
    # per frame, the integration is linear: frame k is k times frame 1 (a check on the numbers)
    pattern = stack.diffraction.integrate1d(npt=NPT, mask=mask).intensity.values
    np.testing.assert_allclose(pattern[1], 2 * pattern[0], rtol=1e-12)
    np.testing.assert_allclose(pattern[2], 3 * pattern[0], rtol=1e-12)


def test_geometry_comes_from_attrs_or_the_argument(ceo2, stack, tmp_path):
    geo = stack.diffraction.geometry()
    assert geo == as_geometry(ceo2.attrs["poni"]) and not geo.flip
    # another geometry given: it wins over attrs
    moved = geo.with_(dist=0.2)
    a = stack.diffraction.integrate1d(npt=NPT, geometry=moved)
    b = integrate1d(stack.counts.assign_attrs(stack.attrs), moved, npt=NPT)
    xr.testing.assert_identical(a.compute(), b.compute())
    with pytest.raises(OptionError, match="no geometry; pass one, or open the entry with poni="):
        stack.drop_attrs().diffraction.integrate1d(npt=NPT)
    with pytest.raises(OptionError, match="expected detector dims"):
        stack.counts.transpose("y", "frame", "x").diffraction.maps()


def test_maps_and_rings_need_only_the_shape(stack, raise_if_dask_computes):
    shape = demo.SHAPE
    with raise_if_dask_computes():
        maps = stack.diffraction.maps(polarization_factor=0.95)
        table = stack.diffraction.rings("CeO2", n_rings=4)
    geo = as_geometry(stack.attrs["poni"])
    xr.testing.assert_identical(maps, pixel_maps(geo, shape, polarization_factor=0.95))
    xr.testing.assert_identical(table, rings("CeO2", geometry=geo, shape=shape, n_rings=4))
    # energy defaults to the PONI's (30 keV), and can be given
    assert table.attrs["energy"] == pytest.approx(demo.ENERGY, rel=1e-9)
    other = stack.diffraction.rings("CeO2", 20000.0)
    assert other.attrs["energy"] == pytest.approx(20000.0) and other.tth[0] > table.tth[0]
    # on a DataArray too (the variable's own attrs carry the PONI)
    da_table = stack.counts.assign_attrs(stack.attrs).diffraction.rings("CeO2", n_rings=4)
    xr.testing.assert_identical(da_table, table)


def test_calibrate_from_a_start_off_the_truth_recovers_the_demo_geometry(ceo2):
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    truth = as_geometry(ceo2.attrs["poni"])
    start = truth.with_(dist=truth.integrator.dist + 2e-3, poni1=truth.integrator.poni1 + 5e-4)
    found = ceo2.diffraction.calibrate("CeO2", start=start, max_rings=8)
    # the function on the frame mean (one frame here) from the same start: the same fit
    twin = calibrate(ceo2.counts.mean("frame"), "CeO2", start=start, max_rings=8)
    assert found.geometry == twin.geometry and found.rms == twin.rms
    # and it is the demo's truth: 2 mm and 3 px off at the start. Poisson noise on rings of
    # ~2000 counts locates them to a small fraction of a pixel: the beam centre within
    # 0.05 px and the distance within 0.05 mm (the PONI itself trades off against the
    # small tilts, so the centre is what is compared)
    x, y = beam_centre(found.geometry, demo.SHAPE)
    x0, y0 = beam_centre(truth, demo.SHAPE)
    assert abs(x - x0) < 0.05 and abs(y - y0) < 0.05
    assert found.geometry.integrator.dist == pytest.approx(demo.PONI["dist"], abs=5e-5)


def test_dioptas_ceo2_with_poni_flip_integrates_as_pyfai_on_the_flipped_image(shared_data):
    # the real check of the option chain: catalog option -> attrs -> accessor -> pyFAI's numbers
    from pyFAI import load

    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    folder = shared_data / "dioptas"
    ds = beamcat.open_dataset(
        folder / "CeO2_Pilatus1M.tif",
        poni=folder / "CeO2_Pilatus1M.poni",
        poni_flip=True,
        timezone="UTC",
    )
    image = ds.counts.values[0].astype(np.float64)
    out = ds.diffraction.integrate1d(npt=1500, mask=image < 0).intensity.values[0]
    flipped = image[::-1]
    ai = load(str(folder / "CeO2_Pilatus1M.poni"))
    res = ai.integrate1d(
        flipped, 1500, unit="2th_deg", mask=flipped < 0, method=("no", "csr", "cython")
    )
    signal = res.intensity > 0
    # same bins, same pixels: pyFAI's float32 sums against float64 ones, 1e-4 relative
    np.testing.assert_allclose(out[signal], res.intensity[signal], rtol=1e-4)
    # unflipped, the rings smear: the strongest peak is much lower (the Dioptas fact)
    smeared = ds.diffraction.integrate1d(
        npt=1500, mask=image < 0, geometry=as_geometry(ds, flip=False)
    )
    assert np.nanmax(smeared.intensity.values) < 0.5 * np.nanmax(out)
