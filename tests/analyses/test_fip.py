"""FIP bias by the linear combination ratio method, against a planted FIP bias.

Synthetic atomic physics: Gaussian-in-log T contribution functions for three
low-FIP and three high-FIP lines (and S, 10.36 eV), three reference regions'
emission measures (Gaussians in log T), pixels whose DEM mixes the three with
random weights, radiances R_i = Aph_i * f_i * C_i . DEM with f = the planted FIP
bias on the low-FIP lines, 1 on the high-FIP ones.
"""

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from beamcat.analyses.fip import (
    contribution_functions,
    fip_bias,
    lcr_coefficients,
    load_contribution_functions,
    save_contribution_functions,
)
from beamcat.errors import FormatError, OptionError

LOGT = np.round(np.arange(5.0, 6.8, 0.05), 2)
LOGN = np.array([8.0, 8.3, 9.0])
# name: (peak log T, FIP eV, photospheric abundance)
LINES = {
    "mg_8": (5.90, 7.65, 3.4e-5),
    "fe_8": (5.65, 7.90, 2.8e-5),
    "si_9": (6.05, 8.15, 3.2e-5),
    "ne_8": (5.80, 21.56, 8.5e-5),
    "o_5": (5.55, 13.62, 4.6e-4),
    "ar_8": (6.00, 15.76, 2.5e-6),
    "s_5": (5.30, 10.36, 1.3e-5),
}
REGIONS = {"quiet_sun": (6.0, 0.15), "active_region": (6.3, 0.2), "coronal_hole": (5.9, 0.1)}


def gauss(peak, width):
    return np.exp(-0.5 * ((LOGT - peak) / width) ** 2)


@pytest.fixture(scope="module")
def cf():
    lines = {}
    for i, (name, (peak, fip, aph)) in enumerate(LINES.items()):
        # density dependence: a factor per density, the same at every T
        cofnt = np.outer([1.0, 1.1, 1.3], gauss(peak, 0.12)) * 1e-24 * (1 + i / 10)
        lines[name] = {"wavelength": 700.0 + 10 * i, "fip": fip, "photospheric_abundance": aph,
                       "cofnt": cofnt, "ion": name}  # fmt: skip
    em = {r: 1e27 * gauss(*p) for r, p in REGIONS.items()}
    return contribution_functions(LOGT, LOGN, lines, em)


def planted(cf, shape=(8, 5), seed=1, lines=("mg_8", "fe_8", "si_9", "ne_8", "o_5", "ar_8")):
    """Radiances (line, y, x) of DEMs mixing the regions, the FIP bias map planted."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.05, 1.0, (3, *shape))
    dem = np.einsum("ryx,rt->tyx", weights, cf.emission_measure.values)
    fip = rng.uniform(1.0, 4.0, shape)
    c = cf.cofnt.sel(log_density=8.3).sel(line=list(lines))
    low = cf.fip.sel(line=list(lines)).values < 10.5
    factor = np.where(low[:, None, None], fip, 1.0)
    aph = cf.photospheric_abundance.sel(line=list(lines)).values[:, None, None]
    radiance = aph * factor * np.einsum("lt,tyx->lyx", c.values, dem)
    da = xr.DataArray(radiance, dims=("line", "y", "x"), coords={"line": list(lines)})
    return da.assign_coords(
        rest_wavelength=("line", cf.wavelength.sel(line=list(lines)).values)
    ), fip


def test_planted_fip_recovered_within_the_combinations_mismatch(cf):
    radiance, truth = planted(cf)
    out = fip_bias(radiance, cf)
    assert out.fip.dims == ("y", "x") and out.attrs["log_density"] == 8.3
    assert list(out.fip_line.values) == list(radiance.line.values)
    np.testing.assert_array_equal(out.low_fip, [True, True, True, False, False, False])
    mismatch = np.abs(out.ratio.values - 1).max()
    # the optimisation matches the combinations to ~1e-3 (fiplcr's tolerances)
    assert mismatch < 0.01
    # a pixel's DEM mixes the regions' with positive weights, so its ratio lies between
    # the regions' ratios (mediant): the FIP bias is exact to within that mismatch
    np.testing.assert_array_less(np.abs(out.fip.values / truth - 1), mismatch + 1e-12)


def test_fip_error_matches_the_scatter_of_noisy_radiances(cf):
    radiance, truth = planted(cf, shape=(1, 1))
    rng = np.random.default_rng(7)
    n = 4000  # Monte Carlo draws: the scatter's relative uncertainty ~ 1/sqrt(2n) = 1.1 %
    sigma = 0.02 * radiance  # 2 % errors: linear propagation holds to ~1e-3
    noisy = radiance.values + sigma.values * rng.standard_normal((n, *radiance.shape))
    stack = xr.DataArray(noisy[..., 0, 0].T, dims=("line", "draw"), coords=radiance.line.coords)
    error = xr.DataArray(np.repeat(sigma.values[..., 0, 0][:, None], n, axis=1), dims=stack.dims,
                         coords=stack.coords)  # fmt: skip
    out = fip_bias(stack.assign_coords(rest_wavelength=radiance.rest_wavelength), cf, error=error)
    scatter = float(out.fip.std())
    reported = float(out.fip_error.mean())
    assert abs(scatter / reported - 1) < 0.05  # 5 % > 4 sigma of the Monte Carlo scatter
    assert abs(float(out.fip.mean()) / truth[0, 0] - 1) < 0.01


def test_lazy_over_a_fit_result_and_matched_by_wavelength(cf, raise_if_dask_computes):
    radiance, truth = planted(cf)
    # a fit result names its lines otherwise: matched by rest wavelength within 0.1 A
    renamed = radiance.assign_coords(line=[f"line{i}" for i in range(radiance.sizes["line"])])
    renamed = renamed.assign_coords(hpln=(("y", "x"), np.ones((8, 5))))  # a map coordinate
    data = da.from_array(renamed.values, chunks=(-1, 4, -1))
    result = xr.Dataset(
        {"radiance": (renamed.dims, data), "radiance_error": (renamed.dims, 0.01 * data)},
        coords=renamed.coords,  # numpy coordinates, as fit_lines gives them
    )
    with raise_if_dask_computes():
        out = fip_bias(result, cf)
    assert out.fip.chunks == ((4, 4), (5,)) and "hpln" in out.fip.coords
    np.testing.assert_allclose(out.fip.values, fip_bias(radiance, cf).fip.values, rtol=1e-12)
    assert "fip_bias(lines=['line0'" in out.attrs["history"]


def test_sulphur_counts_as_low_fip_only_on_request(cf):
    lines = ("mg_8", "ne_8", "o_5", "s_5")
    with_s = lcr_coefficients(cf.sel(line=list(lines)))
    without = lcr_coefficients(cf.sel(line=list(lines)), using_s_as_low_fip=False)
    assert with_s.low_fip.sel(line="s_5") and not without.low_fip.sel(line="s_5")
    # the first high-FIP coefficient is fixed at 1, as fiplcr
    assert with_s.coefficient.sel(line="ne_8") == 1.0


def test_contribution_functions_round_trip_and_fiplcr_files(cf, tmp_path):
    path = save_contribution_functions(cf, tmp_path / "cf.json")
    back = load_contribution_functions(path)
    xr.testing.assert_identical(back, cf)  # JSON keeps float64 exactly (repr round trip)
    # fiplcr's SpecLine.save layout, one .npz per line
    files = []
    for name in ("mg_8", "ne_8"):
        one = cf.sel(line=name)
        element, stage = name.split("_")
        files.append(tmp_path / f"{name}.npz")
        np.savez(files[-1], temperature=10**LOGT, density=10**LOGN, cofnt=one.cofnt.values,
                 element=element.capitalize(), iondeg=stage, wvl=float(one.wavelength),
                 FIP=float(one.fip), ph_abund=float(one.photospheric_abundance),
                 upper="u", lower="l")  # fmt: skip
    em = {r: cf.emission_measure.sel(region=r).values for r in REGIONS}
    npz = load_contribution_functions(files, emission_measure=em)
    assert list(npz.line.values) == ["mg_8_700.00", "ne_8_730.00"]
    np.testing.assert_allclose(npz.cofnt.values, cf.cofnt.sel(line=["mg_8", "ne_8"]).values)
    np.testing.assert_allclose(npz.log_temperature, LOGT, atol=1e-12)


def test_bad_inputs_name_the_problem(cf, tmp_path):
    radiance, _ = planted(cf, lines=("mg_8", "fe_8"))
    with pytest.raises(OptionError, match="no high-FIP line"):
        fip_bias(radiance, cf)
    with pytest.raises(OptionError, match="expected a 'line' dim"):
        fip_bias(radiance.isel(line=0), cf)
    unknown = radiance.assign_coords(line=["a", "b"], rest_wavelength=("line", [1.0, 2.0]))
    with pytest.raises(OptionError, match="match \\[\\]"):
        fip_bias(unknown, cf)
    with pytest.raises(OptionError, match="'mg_8': missing \\['fip'\\]"):
        lines = {"mg_8": {"wavelength": 1, "cofnt": LOGT, "photospheric_abundance": 1}}
        contribution_functions(LOGT, [8.3], lines, {"qs": LOGT})
    bad = tmp_path / "bad.json"
    bad.write_text('{"lines": {}}')
    with pytest.raises(FormatError, match="bad.json: not a contribution-function JSON"):
        load_contribution_functions(bad)
    with pytest.raises(OptionError, match="pass emission_measure"):
        load_contribution_functions([tmp_path / "x.npz"])
