"""EDX element maps and their correlation with NMF loadings (beamcat.analyses.edx).

Truth: a NumPy twin of the window sums (channels picked by energy, side
windows scaled by channel counts), np.corrcoef for Pearson r, and the demo
sample's planted Au fraction, which both its EDX Au map and its 4D-STEM NMF
loading must follow.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.decomposition import nmf
from beamcat.analyses.edx import LINES, correlate, element_maps, fwhm_kev
from beamcat.analyses.stem4d import radial_profiles
from beamcat.catalog.demo._common import read_truth
from beamcat.catalog.edx import match_scan, open_edx
from beamcat.errors import BeamcatError

ENERGY = np.round(np.arange(0.0, 12.0, 0.01), 10)


def _spectra(shape=(6, 7), seed=0) -> xr.Dataset:
    counts = np.random.default_rng(seed).poisson(5.0, (*shape, ENERGY.size)).astype(np.uint16)
    return xr.Dataset(
        {"counts": (("scan_y", "scan_x", "energy"), counts)},
        coords={"energy": ("energy", ENERGY, {"units": "keV"})},
        attrs={"signal": "counts", "source": "map.rpl", "energy_resolution_mnka_ev": 125.0},
    )


def _twin(counts: np.ndarray, centre: float, width: float, background: bool) -> np.ndarray:
    """Window sum around `centre`, minus the side windows' sum per channel times the window's."""
    offset = np.abs(ENERGY - centre)
    inside, side = offset <= width / 2, (offset > width / 2) & (offset <= 1.5 * width)
    total = counts[..., inside].sum(-1).astype(float)
    if background:
        total -= counts[..., side].sum(-1) * inside.sum() / side.sum()
    return total


@pytest.mark.parametrize("background", [True, False])
def test_element_maps_equal_the_numpy_window_sums(background):
    edx = _spectra()
    maps = element_maps(edx, ("Au_La", "Cu_Ka", "C_Ka"), background=background)
    assert maps.dims == ("element", "scan_y", "scan_x")
    for line in ("Au_La", "Cu_Ka", "C_Ka"):
        width = 2 * fwhm_kev(LINES[line], 125.0)  # twice the FWHM at the line (HyperSpy's rule)
        expected = _twin(edx.counts.values, LINES[line], width, background)
        np.testing.assert_allclose(maps.sel(element=line).values, expected, rtol=1e-12)
        assert maps.window_kev.sel(element=line) == pytest.approx(width)
    fixed = element_maps(edx, {"peak": 5.0}, width_kev=0.3, background=False)
    np.testing.assert_allclose(fixed[0].values, _twin(edx.counts.values, 5.0, 0.3, False))
    assert "element_maps(lines=['peak']" in fixed.attrs["history"]


def test_fwhm_follows_the_mn_ka_reference():
    assert fwhm_kev(LINES["Mn_Ka"], 133.0) == pytest.approx(0.133)
    # FWHM^2 = 130^2 + 2.5 (E - E_MnKa) in eV
    assert fwhm_kev(8.0, 130.0) == pytest.approx(np.sqrt(130**2 + 2.5 * (8000 - 5898.8)) / 1e3)


@pytest.mark.parametrize("chunks", [{"scan_y": 1}, {"energy": 77}, {"scan_x": 3, "energy": 400}])
def test_element_maps_are_lazy_and_chunk_independent(chunks, raise_if_dask_computes):
    edx = _spectra()
    with raise_if_dask_computes():
        lazy = element_maps(edx.chunk(chunks), ("Au_La", "Au_Ma"))
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.values, element_maps(edx, ("Au_La", "Au_Ma")).values)


def test_correlate_is_pearson_r_of_every_pair():
    rng = np.random.default_rng(3)
    a = xr.DataArray(rng.random((2, 5, 4)), dims=("component", "scan_y", "scan_x"))
    b = xr.DataArray(rng.random((3, 5, 4)), dims=("element", "scan_y", "scan_x"))
    b = b.assign_coords(element=["Au_La", "Cu_Ka", "C_Ka"])
    b[1] = 2 * a[0] + 1  # a perfect linear relation
    a[1, 0, 0] = np.nan  # left out of its pairs only
    r = correlate(a, b)
    assert r.dims == ("component", "element") and r.attrs["positions"] == 20
    assert float(r.sel(component=0, element="Cu_Ka")) == pytest.approx(1.0)
    ok = np.isfinite(a[1].values.ravel())
    expected = np.corrcoef(a[1].values.ravel()[ok], b[2].values.ravel()[ok])[0, 1]
    assert float(r[1, 2]) == pytest.approx(expected, rel=1e-12)
    as_dataset = xr.Dataset({"loadings": a})
    xr.testing.assert_equal(correlate(as_dataset, b), r)


def test_mismatched_scans_and_bad_lines_raise_beamcat_errors():
    edx = _spectra((6, 6))
    loadings = xr.DataArray(np.ones((2, 5, 6)), dims=("component", "scan_y", "scan_x"))
    maps = element_maps(edx, ("Au_La",))
    with pytest.raises(BeamcatError, match=r"map.rpl.*scan_y': 6.*does not match.*scan_y': 5"):
        correlate(loadings, maps)
    # the simultaneous-EDX rule (4D-STEM N - 1 lines of N) lines them up
    matched = element_maps(match_scan(edx, (5, 6)), ("Au_La",))
    assert correlate(loadings, matched).shape == (2, 1)
    with pytest.raises(BeamcatError, match=r"map.rpl.*unknown X-ray lines \['Xx_Ka'\]"):
        element_maps(edx, ("Au_La", "Xx_Ka"))
    with pytest.raises(BeamcatError, match=r"map.rpl.*no channel in the far window.*0.000-11.990"):
        element_maps(edx, {"far": 40.0})
    with pytest.raises(BeamcatError, match="'energy' dim"):
        element_maps(edx.rename(energy="channel"))


@pytest.fixture(scope="module")
def demo_sample(demo_dir):
    """The demo's 4D-STEM scan and its simultaneous EDX map, matched to the scan."""
    folder = demo_dir / "stem4d"
    scalars, arrays = read_truth(folder)
    scan = beamcat.open_dataset(folder / "scan" / "20230510_101500_data.mib")
    edx = open_edx(folder / scalars["edx"]["source"], scan_shape=scan.counts.shape[:2])
    return scan, edx, scalars, arrays


def test_demo_au_map_follows_the_planted_au_fraction(demo_sample):
    _, edx, _, arrays = demo_sample
    maps = element_maps(edx)  # Au La, Cu Ka, C Ka
    au = arrays["au_fraction"]
    r_au = np.corrcoef(maps.sel(element="Au_La").values.ravel(), au.ravel())[0, 1]
    assert r_au >= 0.9  # Done-means bar (measured 0.99: Poisson noise of ~120 counts at f = 1)
    r_cu = np.corrcoef(maps.sel(element="Cu_Ka").values.ravel(), au.ravel())[0, 1]
    assert abs(r_cu) < 0.2  # the grid's Cu is everywhere: background-subtracted, no Au in it
    r_c = np.corrcoef(maps.sel(element="C_Ka").values.ravel(), arrays["thickness"].ravel())[0, 1]
    assert r_c > 0.8  # carbon follows the planted thickness (measured 0.94)


def test_demo_nmf_loading_correlates_with_the_edx_au_map(demo_sample):
    scan, edx, scalars, _ = demo_sample
    calibration = {**scalars["ellipse"], "reciprocal_pixel_size": scalars["reciprocal_pixel_size"]}
    profiles = radial_profiles(scan, calibration).compute()
    result = nmf(profiles, 2, q_range=(0.15, 0.9))
    r = correlate(result, element_maps(edx, ("Au_La", "C_Ka")))
    assert float(abs(r.sel(element="Au_La")).max()) >= 0.9  # both follow the planted Au fraction
