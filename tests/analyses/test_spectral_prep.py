"""Spectral preparation: sospice parity, SAFFRON's despike, binning errors, laziness, bad input."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from scipy.ndimage import median_filter, uniform_filter

from beamcat.analyses import spectral_prep as sp
from beamcat.analyses._spectral_filters import sigma_clip_block
from beamcat.catalog.demo import spice as demo
from beamcat.catalog.demo._common import read_truth
from beamcat.catalog.spice import open_spice
from beamcat.errors import BeamcatWarning, FormatError, OptionError

QL = "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The demo's SPICE raster alone (seed 0): (file, truth scalars, truth arrays)."""
    folder = tmp_path_factory.mktemp("spice_prep") / "spice"
    demo.write(folder, np.random.default_rng(0))
    scalars, arrays = read_truth(folder)
    return folder / scalars["file"], scalars, arrays


def _sospice(path, window):
    """sospice itself on the file's HDU, as SAFFRON calls it."""
    from sospice import spice_error

    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy: 'W/m2/sr/nm' has several slashes
        return spice_error(hdu=hdul[window], verbose=False)[1]["Total"].value


def _planted_spikes(arrays, window, shape):
    mask = np.zeros(shape, dtype=bool)
    mine = arrays["spikes"][arrays["spikes"][:, 0] == window].astype(int)
    mask[mine[:, 1], mine[:, 2], mine[:, 3], mine[:, 4]] = True
    return mask


@pytest.mark.parametrize("window", [0, 2])  # short- and long-wavelength detector
def test_sigma_is_sospices(sample, window):
    path, _, arrays = sample
    ds = open_spice(path, window=window)
    expected = _sospice(path, window).astype(np.float32)
    # the same sospice arithmetic per chunk as on the whole HDU: equal to the bit
    sigma = sp.spice_sigma(ds.chunk({"y": 40, "x": 17}))
    np.testing.assert_array_equal(sigma.values, expected)
    assert "sospice" in sigma.attrs["noise_model"]
    # against the planted noise (sospice on the noise-free model): sospice on noisy data
    # moves sigma by the noise on the signal term, a few % (median) away from spikes
    clean = ~_planted_spikes(arrays, window, ds.radiance.shape)
    ratio = sigma.values[clean] / arrays[f"sigma_{window}"][None][clean]
    assert abs(np.median(ratio) - 1) < 0.01 and np.median(np.abs(ratio - 1)) < 0.06


def test_despike_finds_the_planted_spikes(sample):
    path, _, arrays = sample
    for window in range(len(demo.WINDOWS)):
        radiance = open_spice(path, window=window).radiance.chunk({"y": 32, "x": 16})
        cleaned, spikes = sp.despike(radiance)
        data, cleaned, spikes = radiance.values, cleaned.values, spikes.values
        planted = _planted_spikes(arrays, window, data.shape)
        assert spikes[planted].all()  # every cosmic ray (30-300 above the line) found
        # SAFFRON's 2.5-sigma clip also takes the far tail of the noise (and line cores):
        # measured 0.02-0.19 % of the samples here
        assert (spikes & ~planted).mean() < 0.003
        # samples not flagged are untouched; the flagged ones hold the local median
        np.testing.assert_array_equal(cleaned[~spikes], data[~spikes])
        sigma = arrays[f"sigma_{window}"][None]
        assert np.all(np.abs(cleaned[planted] - data[planted]) > 20)
        assert np.median(np.abs(cleaned[planted] - data[planted]) / sigma[planted]) > 50


def _saffron_despike(cube, clip=2.5, size=(6, 3, 3), iterations=3):
    """SAFFRON's utils/despike.py (MIT) on one (wavelength, y, x) cube: the reference."""
    data = cube.astype(float)
    mean = np.nanmean(data, axis=(1, 2))
    data[np.isnan(data)] = np.broadcast_to(mean[:, None, None], data.shape)[np.isnan(data)]
    for _ in range(iterations):
        med = median_filter(data, size)
        var = uniform_filter(data**2, size, mode="reflect")
        var -= uniform_filter(data, size, mode="reflect") ** 2
        var[var <= 0] = 1e-20
        data = np.where(np.abs(data - med) > clip * np.sqrt(var), med, data)
    return data


def test_despike_matches_saffron_and_ignores_chunking(sample):
    path, _, _ = sample
    cube = open_spice(path, window=0).radiance.isel(y=slice(0, 40), x=slice(0, 30)).load()
    cube[0, 5:8, 3, 4] = np.nan  # a few missing samples: filled with the mean spectrum
    whole, spikes = sp.despike(cube)
    reference = _saffron_despike(cube.values[0])
    finite = np.isfinite(cube.values[0])
    np.testing.assert_array_equal(whole.values[0][finite], reference[finite].astype(np.float32))
    assert np.isnan(whole.values[0][~finite]).all() and not spikes.values[0][~finite].any()
    # three iterations of 3x3 filters reach 3 pixels: overlaps of 3 make any chunking exact
    for chunks in ({"y": 7, "x": 4}, {"y": 13, "x": 30}, {"y": 40, "x": 3}):
        cleaned, chunk_spikes = sp.despike(cube.chunk(chunks))
        np.testing.assert_array_equal(cleaned.values, whole.values)
        np.testing.assert_array_equal(chunk_spikes.values, spikes.values)


@pytest.mark.parametrize("shape", [(12, 9, 11), (7, 4, 3), (6, 1, 1), (3, 2, 5)])
@pytest.mark.parametrize("kind", ["ties", "noise", "nan plane"])
def test_sigma_clip_block_equals_scipy_median_filter(shape, kind):
    """The counting shortcut (`_clip_pass`) against scipy's median filter, bit for bit.

    Small integers make ties and values exactly at the clip limits (the
    counts' edge cases); arrays thinner than the filter test the reflect
    padding; an all-NaN plane inside the window takes the scipy path.
    """
    rng = np.random.default_rng(len(kind) + shape[0])
    for clip in (0.5, 1.0, 2.5):
        if kind == "ties":
            cube = rng.integers(0, 5, shape).astype(float)
        else:
            cube = rng.normal(size=shape)
            cube[rng.random(shape) < 0.02] += 30
        if kind == "nan plane":
            cube[shape[0] // 2] = np.nan
        clipped = sigma_clip_block(cube, size=(6, 3, 3), clip=clip, iterations=3)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of the NaN plane
            reference = _saffron_despike(cube, clip=clip)
        np.testing.assert_array_equal(clipped, reference)


def _noise_stack(n=4000, shape=(9, 8), seed=1):
    """`n` noise realisations on the leading dim, with a σ per pixel (truth)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.5, 2.0, (1, *shape))
    values = 10 + rng.normal(size=(n, 1, *shape)) * sigma
    dims = ("draw", "wavelength", "y", "x")
    return (
        xr.DataArray(values, dims=dims),
        xr.DataArray(np.broadcast_to(sigma, values.shape), dims=dims),
    )


def test_convolve_error_is_the_error_of_the_mean():
    values, sigma = _noise_stack()
    values[:, 0, 4, 4] = np.nan  # a hole: the boxes around it average 8 samples
    mean, error = sp.convolve(values.chunk({"y": 4, "x": 3}), sigma, 3)
    mean, error = mean.values, error.values
    # analytic: sqrt(sum sigma^2) / N over the samples in the box (the edges hold fewer)
    s = sigma.values[0, 0]
    np.testing.assert_allclose(error[0, 0, 2, 2], np.sqrt((s[1:4, 1:4] ** 2).sum()) / 9)
    np.testing.assert_allclose(error[0, 0, 0, 0], np.sqrt((s[:2, :2] ** 2).sum()) / 4)
    box = s[3:6, 4:7] ** 2  # around (4, 5): the hole at (4, 4) is its [1, 0]
    np.testing.assert_allclose(error[0, 0, 4, 5], np.sqrt(box.sum() - box[1, 0]) / 8)
    assert np.isnan(mean[:, 0, 4, 4]).all()
    # Monte Carlo: the spread of the means over 4000 draws is the reported error
    # (the std of 4000 draws is good to 1.1 %: 4 % is > 3 standard errors)
    ok = np.isfinite(mean[0])
    np.testing.assert_allclose(mean[:, ok].std(axis=0), error[0][ok], rtol=0.04)
    # exact sums in a fixed order: the same numbers unchunked
    np.testing.assert_array_equal(sp.convolve(values, sigma, 3)[1].values, error)
    # SAFFRON's sqrt(box(sigma^2)) is sqrt(N) times that: the typical sigma of one sample
    _, saffron = sp.convolve(values, sigma, 3, error="saffron")
    np.testing.assert_allclose(saffron.values[0, 0, 2, 2], error[0, 0, 2, 2] * 3)


@pytest.mark.parametrize("how", ["mean", "sum"])
def test_bin_pixels_error_propagation(how):
    values, sigma = _noise_stack()
    binned, error = sp.bin_pixels(values.chunk({"y": 3}), sigma, (3, 2), how=how)
    assert binned.sizes["y"] == 3 and binned.sizes["x"] == 4  # 9 x 8 pixels in 3 x 2 bins
    s2 = (sigma.values[0, 0] ** 2)[:9, :8].reshape(3, 3, 4, 2).sum(axis=(1, 3))
    expected = np.sqrt(s2) / (6 if how == "mean" else 1)
    np.testing.assert_allclose(error.values[0, 0], expected)
    np.testing.assert_allclose(np.std(binned.values, axis=0)[0], expected, rtol=0.04)


def test_prepare_is_lazy(sample, raise_if_dask_computes):
    path, _, _ = sample
    ds = open_spice(path, window=1)
    with raise_if_dask_computes():
        out = sp.prepare(ds, ("preclean", "sigma", "despike", "convolve", "bin"), box=3, factors=2)
    for name in ("radiance", "sigma", "spikes"):
        assert isinstance(out[name].data, da.Array), name
    lines = out.attrs["history"].splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "preclean",
        "sigma",
        "despike",
        "convolve",
        "bin",
    ]
    assert out.sizes["y"] == 48 and out.spikes.dtype == bool
    # a spike flags every box around it, then its bin
    _, spikes = sp.despike(ds.radiance)
    boxed = sp.convolve(spikes.astype(float), xr.zeros_like(spikes, float), 3)[0] > 0
    binned = boxed.coarsen(y=2, x=2).max()
    np.testing.assert_array_equal(out.spikes.values, binned.values)


def test_prepare_demo_window(sample):
    path, _, arrays = sample
    ds = open_spice(path, window=0).chunk({"y": 48})
    out = sp.prepare(ds).compute()
    planted = _planted_spikes(arrays, 0, ds.radiance.shape)
    assert out.spikes.values[planted].all()
    np.testing.assert_array_equal(out.sigma.values, _sospice(path, 0).astype(np.float32))
    assert out.attrs["signal"] == "radiance" and "sospice" in out.attrs["history"]


def test_real_spice_l2_through_prepare(shared_data):
    # both windows of the quick-look file sit just short of sospice's detector ranges
    # (694.8-700.6 A and 965.7-969.2 A; sospice: 700-793 and 968-1055 A): sospice gives
    # NaN everywhere, so sigma is 1 as in SAFFRON, with a warning and a history line
    for window in (0, 1):
        assert np.isnan(_sospice(shared_data / QL, window)).all()  # sospice's own answer
        ds = open_spice(shared_data / QL, window=window)
        with pytest.warns(BeamcatWarning, match="sigma = 1"):
            out = sp.prepare(ds).compute()
        radiance = ds.radiance.values
        kept = np.isfinite(out.radiance.values)
        # preclean: everything outside [-10, 490] W/m2/sr/nm is gone, the rest kept
        assert not kept[(radiance < -10) | (radiance > 490)].any()
        assert kept.sum() > 0.5 * np.isfinite(radiance).sum()
        assert (out.sigma.values == 1).all()
        assert "sigma = 1" in out.attrs["history"]
        assert out.spikes.values.sum() < 0.05 * kept.sum()


def test_denoise_with_watroo(sample):
    pytest.importorskip("watroo")
    path, _, arrays = sample
    radiance = open_spice(path, window=3).radiance.chunk({"y": 48})
    radiance = radiance.where(radiance.y != 5)  # a missing row stays missing
    smooth = sp.denoise(sp.despike(radiance)[0])
    assert isinstance(smooth.data, da.Array)
    smooth = smooth.values
    assert np.isnan(smooth[:, :, 5]).all() and np.isfinite(np.delete(smooth, 5, axis=2)).all()
    assert "watroo" in sp.denoise(radiance).attrs["history"]


def test_bad_input(sample, tmp_path):
    path, _, _ = sample
    ds = open_spice(path, window=0)
    with pytest.raises(FormatError, match=r"\['RADCAL'\] missing"):
        sp.spice_sigma(
            ds.drop_attrs().assign_attrs({k: v for k, v in ds.attrs.items() if k != "RADCAL"})
        )
    with pytest.raises(FormatError, match="no data variable 'radiance'"):
        sp.prepare(ds.rename(radiance="counts").assign_attrs(signal="radiance"))
    with pytest.raises(OptionError, match="unknown step"):
        sp.prepare(ds, ("preclean", "smooth"))
    with pytest.raises(OptionError, match="needs box"):
        sp.prepare(ds, ("convolve",))
    # an L2 file whose windows lost their data arrays (headers only)
    stripped = tmp_path / "stripped.fits"
    with fits.open(path) as hdul:
        hdus = [fits.PrimaryHDU(header=hdul[0].header)]
        hdus += [fits.ImageHDU(header=h.header) for h in hdul[1:4]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.HDUList(hdus).writeto(stripped)
    with pytest.warns(BeamcatWarning):
        empty = open_spice(stripped, window=1)
    with pytest.raises(FormatError, match="no spectra"):
        sp.prepare(empty)
