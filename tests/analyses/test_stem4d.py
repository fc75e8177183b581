"""4D-STEM analyses against NumPy twins, the demo scan's planted truth and the real Merlin files.

What is compared, and why the tolerances are what they are:

- radial mean/variance on the demo scan against a float64 ``np.bincount``
  reference whose bins come from the demo's planted undistorted radius
  (truth.npz ``radius_px``), not from beamcat's ellipse code: the means are
  the same sums divided by the same counts (equal to ~1 ulp); the variance
  reference is two-pass (Σ(s - mean)²/N), beamcat's one-pass Σs²/N - mean²
  is off by a few eps·Σs²/N, and the reference's own sum of N squared
  deviations by ~√N·eps·variance (rounding as a random walk): `_close_variance`;
- virtual images: integer counts times 0/1 masks are integer sums, exact in
  float64 whatever order BLAS adds them: compared for equality;
- centre of mass against the planted pattern centre (the disc, thresholded
  above the rings and the amorphous background, is symmetric about it;
  Poisson noise moves a frame's centre by ~0.02 px) and against a NumPy twin;
- laziness (a scheduler that forbids computing) and chunking (any chunks give
  identical numbers: one frame's sums never depend on its neighbours);
- bad input raises OptionError naming the input.
"""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.ellipse import elliptical_radius, to_p_ellipse
from beamcat.analyses.stem4d import (
    annulus_mask,
    centre_of_mass,
    disc_mask,
    max_pattern,
    mean_pattern,
    radial_bins,
    radial_profiles,
    save_profiles,
    sum_image,
    sum_pattern,
    virtual_images,
)
from beamcat.analyses.stem4d_calibration import AuCalibration
from beamcat.catalog.demo import stem4d as demo
from beamcat.catalog.demo._common import read_truth
from beamcat.errors import FormatError, OptionError


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """The demo scan (32 x 32 frames of 128 x 128, dask-backed) and its truth."""
    folder = tmp_path_factory.mktemp("demo") / "stem4d"
    entries = {e.name: e for e in demo.write(folder, np.random.default_rng([0, 10]))}
    entry = entries["stem4d_scan"]
    ds = beamcat.open_dataset(entry.source, **entry.options)
    scalars, arrays = read_truth(folder)
    return ds, scalars, arrays


@pytest.fixture(scope="module")
def calibration(scan):
    _, truth, _ = scan
    return {**truth["ellipse"], "reciprocal_pixel_size": truth["reciprocal_pixel_size"]}


def _reference_profiles(frames: np.ndarray, labels: np.ndarray, n: int):
    """Float64 mean, two-pass population variance and count per bin of every frame."""
    flat = frames.reshape(-1, labels.size).astype(np.float64)
    keep = labels.ravel() >= 0
    bins = labels.ravel()[keep]
    count = np.bincount(bins, minlength=n).astype(np.float64)
    mean = np.empty((flat.shape[0], n))
    var = np.empty((flat.shape[0], n))
    for i, frame in enumerate(flat):
        s = frame[keep]
        mean[i] = np.bincount(bins, s, minlength=n) / count
        var[i] = np.bincount(bins, (s - mean[i][bins]) ** 2, minlength=n) / count
    shape = (*frames.shape[:-2], n)
    return mean.reshape(shape), var.reshape(shape), count


def _close_variance(actual, mean, var, count):
    """One-pass variance vs the two-pass one: within both rounding errors (module docstring)."""
    bound = 8 * np.finfo(float).eps * (mean**2 + var * np.sqrt(count))
    assert np.all(np.abs(actual - var) <= bound)


def test_radial_profiles_equal_a_float64_reference_on_the_demo_scan(scan, calibration):
    ds, truth, arrays = scan
    rps = truth["reciprocal_pixel_size"]
    step = 0.01  # 1/Angstrom
    out = radial_profiles(ds, calibration, q_step=step, q_max=0.9)
    assert out["mean"].dims == ("scan_y", "scan_x", "q") and out.sizes["q"] == 90
    assert out["q"].attrs["units"] == "1/Angstrom"
    # bins from the planted undistorted radius (the demo's own code, not elliptical_radius)
    labels = np.floor(arrays["radius_px"] * rps / step).astype(np.int64)
    labels[labels >= 90] = -1
    bins = radial_bins((128, 128), calibration, q_step=step, q_max=0.9)
    assert np.array_equal(bins.labels, labels)
    frames = ds.counts.values
    mean, var, count = _reference_profiles(frames, labels, 90)
    np.testing.assert_allclose(out["mean"].values, mean, rtol=1e-15, atol=0)
    _close_variance(out["variance"].values, mean, var, count)
    np.testing.assert_array_equal(out["count"].values, np.broadcast_to(count, mean.shape))
    nv = out["normalized_variance"].values * mean**2
    _close_variance(np.where(mean > 0, nv, 0), mean, np.where(mean > 0, var, 0), count)
    # the Au 220 ring sits where it was planted: the Au-rich positions' mean peaks there
    au = arrays["au_fraction"] > 0.9
    s220 = truth["rings"]["220"]["s"]
    near = np.abs(out["q"].values - s220) < 0.05
    profile = out["mean"].values[au].mean(axis=0)
    assert abs(out["q"].values[near][np.argmax(profile[near])] - s220) <= step


def test_radial_profiles_from_attrs_centre_and_units(scan, calibration):
    ds, truth, _ = scan
    given = radial_profiles(ds, calibration, n_bins=40)
    from_attrs = radial_profiles(ds.assign_attrs(calibration=calibration), n_bins=40)
    xr.testing.assert_identical(given.compute(), from_attrs.compute())
    # the entry's own calibration (opened with calibration=: attrs) and an AuCalibration
    assert ds.attrs["calibration"]["source"].endswith("calibration.json")
    # (its JSON's numbers may differ from truth.json's in the last digit)
    xr.testing.assert_allclose(radial_profiles(ds, n_bins=40), given, rtol=1e-12)
    fields = {k: calibration[k] for k in ("x0", "y0", "a", "b", "theta", "reciprocal_pixel_size")}
    xr.testing.assert_equal(radial_profiles(ds, AuCalibration(**fields), n_bins=40), given)
    # ePSIC's JSON layout is read too (p_ellipse in py4DSTEM's axes: row first, π/2 - θ)
    epsic = {
        "reciprocal_space_pix": calibration["reciprocal_pixel_size"],
        "p_ellipse": to_p_ellipse(**{k: calibration[k] for k in ("x0", "y0", "a", "b", "theta")}),
    }
    xr.testing.assert_allclose(radial_profiles(ds, epsic, n_bins=40), given, rtol=1e-12)
    # circular, in px: bins of one pixel up to the largest whole ring (62.7 px to x = 127)
    circular = radial_profiles(ds, centre=truth["centre"])
    assert circular["q"].attrs["units"] == "px"
    assert circular.sizes["q"] == 62 and circular["q"].values[0] == 0.5
    r = np.hypot(*(np.indices((128, 128))[::-1] - np.array(truth["centre"])[:, None, None]))
    frame = ds.counts.values[3, 4].astype(float)
    ring = (r >= 10) & (r < 11)
    np.testing.assert_allclose(circular["mean"].values[3, 4, 10], frame[ring].mean(), rtol=1e-14)


def test_radial_profiles_mask_statistics_and_frame_dim(scan, calibration):
    ds, _, _ = scan
    frames = ds.counts.stack(frame=("scan_y", "scan_x")).transpose("frame", "y", "x")
    frames = frames.drop_vars(["frame", "scan_y", "scan_x"])[:20]
    mask = np.ones((128, 128), bool)
    mask[60:70, 80:90] = False  # a bad region
    out = radial_profiles(frames, calibration, n_bins=32, mask=mask, statistics=["sum", "sum_sq"])
    assert sorted(out.data_vars) == ["count", "sum", "sum_sq"]
    bins = radial_bins((128, 128), calibration, n_bins=32)
    labels = np.where(mask, bins.labels, -1)
    values = frames.values.reshape(20, -1).astype(float)
    for i in (0, 19):
        keep = labels.ravel() >= 0
        expected = np.bincount(labels.ravel()[keep], values[i][keep], minlength=32)
        np.testing.assert_array_equal(out["sum"].values[i], expected)  # integer sums: exact


def test_overview_patterns_and_virtual_images_against_numpy(scan):
    ds, truth, _ = scan
    frames = ds.counts.values
    np.testing.assert_allclose(mean_pattern(ds).values, frames.mean(axis=(0, 1)), rtol=1e-14)
    np.testing.assert_array_equal(sum_pattern(ds).values, frames.sum(axis=(0, 1)))
    np.testing.assert_array_equal(max_pattern(ds).values, frames.max(axis=(0, 1)))
    # the integer sum (int64) and NumPy's: the same integers
    assert frames.dtype.kind == "u"
    np.testing.assert_array_equal(sum_image(ds).values, frames.sum(axis=(2, 3)))
    floats = ds.counts.astype(np.float32).where(ds.counts != 7)  # NaN propagates, as in sum
    np.testing.assert_array_equal(
        sum_image(floats).values, floats.values.sum(axis=(2, 3), dtype=np.float64)
    )
    centre = truth["centre"]
    bf = disc_mask((128, 128), centre, 6)
    adf = annulus_mask((128, 128), centre, 20, 50)
    # the masks against their definition (LiberTEM's: r <= radius; inner < r <= outer)
    r = np.hypot(np.arange(128)[None, :] - centre[0], np.arange(128)[:, None] - centre[1])
    assert np.array_equal(bf, r <= 6) and np.array_equal(adf, (r > 20) & (r <= 50))
    weights = np.exp(-r / 30)  # a float mask too
    out = virtual_images(ds, {"bf": bf, "adf": adf, "w": weights})
    assert out.dims == ("mask", "scan_y", "scan_x")
    assert out["mask"].values.tolist() == ["bf", "adf", "w"]
    flat = frames.reshape(32, 32, -1).astype(np.float64)
    np.testing.assert_array_equal(out.sel(mask="bf").values, flat @ bf.ravel().astype(float))
    np.testing.assert_array_equal(out.sel(mask="adf").values, flat @ adf.ravel().astype(float))
    np.testing.assert_allclose(out.sel(mask="w").values, flat @ weights.ravel(), rtol=1e-13)
    # integer counts and 0/1 masks take the int64 kernel; float frames np.einsum: equal
    as_float = virtual_images(ds.counts.astype(np.float64), {"bf": bf, "adf": adf})
    np.testing.assert_array_equal(as_float.values, out.values[:2])
    # one mask, and a DataArray (mask, y, x): the same images
    stack = xr.DataArray(np.stack([bf, adf]), dims=("mask", "y", "x"), coords={"mask": ["b", "a"]})
    np.testing.assert_array_equal(virtual_images(ds, stack).values, out.values[:2])
    np.testing.assert_array_equal(virtual_images(ds, bf).values[0], out.values[0])


def test_centre_of_mass_finds_the_planted_centre(scan):
    ds, truth, _ = scan
    com = centre_of_mass(ds, threshold=100)  # above rings and background: the disc only
    x0, y0 = truth["centre"]
    assert np.abs(com["com_x"].values - x0).max() < 0.1
    assert np.abs(com["com_y"].values - y0).max() < 0.1
    assert np.abs(com["shift_x"].values).max() < 0.1
    # against a NumPy twin, with a mask
    mask = disc_mask((128, 128), (64, 63), 30)
    com = centre_of_mass(ds, mask=mask, threshold=3)
    frames = ds.counts.values.astype(float)
    s = np.where(frames >= 3, frames, 0) * mask
    total = s.sum(axis=(2, 3))
    yy, xx = np.indices((128, 128))
    com_y, com_x = (s * yy).sum(axis=(2, 3)) / total, (s * xx).sum(axis=(2, 3)) / total
    np.testing.assert_allclose(com["com_y"].values, com_y, rtol=1e-13)
    np.testing.assert_allclose(com["com_x"].values, com_x, rtol=1e-13)
    mean_y = (s * yy).sum() / total.sum()
    np.testing.assert_allclose(com["shift_y"].values, com_y - mean_y, atol=1e-11)


def test_every_analysis_is_lazy(scan, calibration, raise_if_dask_computes):
    ds, truth, _ = scan
    bf = disc_mask((128, 128), truth["centre"], 6)
    with raise_if_dask_computes():
        results = [
            mean_pattern(ds),
            max_pattern(ds),
            sum_pattern(ds),
            sum_image(ds),
            virtual_images(ds, bf),
            radial_profiles(ds, calibration, n_bins=32)["variance"],
            centre_of_mass(ds)["shift_x"],
        ]
    assert all(isinstance(r.data, da.Array) for r in results)


@pytest.mark.parametrize("chunks", [{"scan_y": 1, "scan_x": 7}, {"scan_y": 32, "scan_x": 32}])
def test_any_chunking_gives_the_same_numbers(scan, calibration, chunks):
    ds, truth, _ = scan
    rechunked = ds.chunk(chunks)
    bf = disc_mask((128, 128), truth["centre"], 6)
    for f in (
        lambda d: radial_profiles(d, calibration, n_bins=32),
        lambda d: virtual_images(d, bf),
        sum_image,
        lambda d: centre_of_mass(d, threshold=2),
    ):
        xr.testing.assert_identical(f(rechunked).compute(), f(ds).compute())


def test_bad_input_names_it(scan, calibration):
    ds, _, _ = scan
    with pytest.raises(OptionError, match=r"mask 'bf'.*shape \(10, 10\).*\(128, 128\)"):
        virtual_images(ds, {"bf": np.ones((10, 10), bool)})
    with pytest.raises(OptionError, match=r"mask of shape \(5, 5\).*\(128, 128\)"):
        radial_profiles(ds, calibration, mask=np.ones((5, 5), bool))
    with pytest.raises(OptionError, match=r"centre \(x, y\) = \(200, 3\) lies outside the frame"):
        radial_profiles(ds, centre=(200, 3))
    with pytest.raises(OptionError, match=r"disc_mask: centre .* outside the frame"):
        disc_mask((128, 128), (-3, 5), 4)
    with pytest.raises(OptionError, match=r"calibration: centre .* outside the frame"):
        radial_profiles(ds, {**calibration, "x0": 500})
    with pytest.raises(OptionError, match=r"q_max=5 1/Angstrom.*farthest pixel"):
        radial_profiles(ds, calibration, q_max=5)
    with pytest.raises(FormatError, match=r"lacks \['theta', 'reciprocal_pixel_size'\]"):
        radial_profiles(ds, {k: calibration[k] for k in ("x0", "y0", "a", "b")})
    with pytest.raises(OptionError, match="no calibration"):
        radial_profiles(ds.drop_attrs(deep=False))  # the demo entry carries one in attrs
    with pytest.raises(OptionError, match="q_step= or n_bins=, not both"):
        radial_profiles(ds, calibration, q_step=0.01, n_bins=4)
    with pytest.raises(OptionError, match="statistics="):
        radial_profiles(ds, calibration, statistics=("median",))
    with pytest.raises(OptionError, match="annulus_mask: inner=5, outer=2"):
        annulus_mask((128, 128), (64, 64), 5, 2)
    with pytest.raises(OptionError, match=r"centre_of_mass.*mask.*shape \(3,\)"):
        centre_of_mass(ds, mask=np.ones(3))


def test_save_profiles_zarr_and_hdf5_read_back(scan, calibration, tmp_path):
    ds, _, _ = scan
    out = radial_profiles(ds, calibration, n_bins=16).compute()
    name = "20230510_101500_data"  # the source file's stem, as ePSIC names its outputs
    store = save_profiles(out, tmp_path / "profiles.zarr")
    back = beamcat.open_dataset(store)
    np.testing.assert_array_equal(back[f"{name}_azimuthal_mean"].values, out["mean"].values)
    np.testing.assert_array_equal(back[f"{name}_azimuthal_var"].values, out["variance"].values)
    np.testing.assert_array_equal(back["q"].values, out["q"].values)
    assert back.attrs["signal"] == f"{name}_azimuthal_mean"
    lazy = radial_profiles(ds, calibration, n_bins=16)  # written chunk by chunk
    h5 = save_profiles(lazy, tmp_path / "profiles.h5", format="hdf5", name="run1")
    with h5py.File(h5) as f:
        np.testing.assert_array_equal(f["run1_azimuthal_var"][()], out["variance"].values)
        np.testing.assert_array_equal(f["q"][()], out["q"].values)
        assert f["q"].attrs["units"] == "1/Angstrom"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.h5", "profiles.zarr"]
    with pytest.raises(OptionError, match="exists"):
        save_profiles(out, store)


MIBS = [
    "Merlin_navigation4x2_signalNx256_ROI/002_merlin_test_roi_sig256x128_nav4x2_hot_pixel_52x_39y.mib",
    "Merlin_navigation4x2_signalNx256_ROI/003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib",
    "Merlin_navigation4x2_ROI/001_4x2_6bit.mib",
    "Merlin_navigation4x2_ROI/002_4x2_6bit_roi128.mib",
]


@pytest.mark.parametrize("name", MIBS)
def test_real_4x2_scans_through_virtual_images_and_radial_profiles(shared_data, name):
    ds = beamcat.open_dataset(shared_data / "rosettasciio_mib" / name)
    frames = ds.counts.values
    shape = frames.shape[-2:]
    centre = ((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    bf = disc_mask(shape, centre, shape[0] / 4)
    adf = annulus_mask(shape, centre, shape[0] / 4, shape[0] / 2)
    images = virtual_images(ds, {"bf": bf, "adf": adf}).values
    flat = frames.reshape(*frames.shape[:-2], -1).astype(np.float64)
    np.testing.assert_array_equal(images[0], flat @ bf.ravel().astype(float))
    np.testing.assert_array_equal(images[1], flat @ adf.ravel().astype(float))
    out = radial_profiles(ds, centre=centre)
    labels = np.floor(elliptical_radius(shape, x0=centre[0], y0=centre[1], a=1, b=1, theta=0))
    labels = np.where(labels < out.sizes["q"], labels, -1).astype(np.int64)
    mean, var, count = _reference_profiles(frames, labels, out.sizes["q"])
    np.testing.assert_allclose(out["mean"].values, mean, rtol=1e-15)
    _close_variance(out["variance"].values, mean, var, count)
