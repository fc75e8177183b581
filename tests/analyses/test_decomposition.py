"""NMF of radial profiles and the scree helper (beamcat.analyses.decomposition).

Truth used here: the demo scan's planted Au fraction (its radial profiles from
`radial_profiles`), planted two-phase profiles (known components and weights),
and scikit-learn / NumPy run in the test on the original's preprocessing
written out again (rescale each profile to 0-1, clip at 0).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from sklearn.decomposition import NMF

import beamcat
import beamcat.analyses.decomposition as decomposition
from beamcat.analyses.decomposition import nmf, scree
from beamcat.analyses.stem4d import radial_profiles
from beamcat.catalog.demo._common import read_truth
from beamcat.errors import BeamcatError

#: the demo's Au rings and amorphous carbon, without the central disc (1/Angstrom)
Q_RANGE = (0.15, 0.9)


@pytest.fixture(scope="module")
def demo_profiles(demo_dir):
    """Radial mean/variance of the demo scan and its truth."""
    scalars, arrays = read_truth(demo_dir / "stem4d")
    ds = beamcat.open_dataset(demo_dir / "stem4d" / "scan" / "20230510_101500_data.mib")
    calibration = {**scalars["ellipse"], "reciprocal_pixel_size": scalars["reciprocal_pixel_size"]}
    return radial_profiles(ds, calibration).compute(), scalars, arrays


def _planted(shape=(12, 10), seed=0):
    """Profiles = weights @ two Gaussian phases (+ noise 1e-4); weights (scan_y, scan_x, 2)."""
    q = np.linspace(0.0, 1.0, 60)
    phases = np.stack([np.exp(-(((q - c) / 0.06) ** 2)) for c in (0.3, 0.7)])
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.05, 1.0, (*shape, 2))
    weights[0, :, 1] = weights[1, :, 0] = 0  # pure positions: NMF's answer is then unique
    values = weights @ phases + rng.normal(0, 1e-4, (*shape, q.size))
    profiles = xr.Dataset(
        {
            "variance": (("scan_y", "scan_x", "q"), np.abs(values)),
            "mean": (("scan_y", "scan_x", "q"), np.abs(values) + 1.0),
        },
        coords={"q": ("q", q, {"units": "1/Angstrom"})},
        attrs={"source": "planted.zarr"},
    )
    return profiles, phases, weights


def _prepared(values: np.ndarray) -> np.ndarray:
    """The original's preprocessing, written out: rescale each row to 0-1, then clip at 0."""
    x = values.reshape(-1, values.shape[-1]).astype(float)
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return np.clip((x - low) / (high - low), 0, None)


def _best_r(maps: np.ndarray, truth: np.ndarray) -> float:
    return max(abs(np.corrcoef(m.ravel(), truth.ravel())[0, 1]) for m in maps)


@pytest.mark.parametrize("profile", ["variance", "mean"])
def test_demo_loading_map_follows_the_planted_au_fraction(demo_profiles, profile):
    # the demo plants two phases (amorphous carbon, Au): one loading map must be the Au map
    profiles, scalars, arrays = demo_profiles
    out = nmf(profiles, 2, profile=profile, q_range=Q_RANGE)
    assert out.loadings.dims == ("component", "scan_y", "scan_x")
    assert out.loadings.shape == (2, 32, 32)
    au = arrays["au_fraction"]
    r = [np.corrcoef(m.ravel(), au.ravel())[0, 1] for m in out.loadings.values]
    assert max(np.abs(r)) >= 0.9  # the Done-means bar (measured 0.92-0.95)
    # the component of the loading that rises with Au peaks at the Au 111 ring, s = sqrt(3)/a
    k = int(np.argmax(r))
    peak = float(out.components[k].idxmax("q"))
    assert abs(peak - scalars["rings"]["111"]["s"]) < 0.02  # two 0.0145 bins, the ring's width
    assert out.attrs["profile"] == profile and "nmf(n_components=2" in out.attrs["history"]


def test_nmf_equals_scikit_learn_on_the_originals_preprocessing():
    # the same data, preprocessing and settings through scikit-learn directly: the
    # factorisations agree (loadings x components, which neither scaling nor order change)
    profiles, _, _ = _planted()
    out = nmf(profiles, 2)
    x = _prepared(profiles["variance"].values)
    model = NMF(2, init="nndsvda", solver="mu", max_iter=2000, tol=1e-4, random_state=0)
    expected = model.fit_transform(x) @ model.components_
    ours = np.einsum("kyx,kq->yxq", out.loadings.values, out.components.values).reshape(x.shape)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)  # rounding of the rescaling
    assert out.attrs["reconstruction_err"] == pytest.approx(model.reconstruction_err_)
    assert float(out.components.max("q").min()) == 1.0  # components scaled to a maximum of 1


def test_planted_phases_and_weights_are_recovered_without_rescaling():
    # without the per-profile rescaling the factorisation is the planted one up to scale
    profiles, phases, weights = _planted()
    out = nmf(profiles, 2, rescale=False)
    for k in range(2):
        component = out.components[k].values
        match = max(range(2), key=lambda j: np.corrcoef(component, phases[j])[0, 1])
        # "mu" stops when the error changes by under tol=1e-4 per 10 steps: measured 0.99992
        assert np.corrcoef(component, phases[match])[0, 1] > 0.999
        loading = out.loadings[k].values
        assert np.corrcoef(loading.ravel(), weights[..., match].ravel())[0, 1] > 0.999


def test_several_datasets_fitted_together_get_a_dataset_dim():
    profiles, _, _ = _planted((12, 10))
    first, second = profiles.isel(scan_y=slice(0, 6)), profiles.isel(scan_y=slice(6, 12))
    together = nmf({"a": first, "b": second.isel(scan_x=slice(0, 8))}, 2, rescale=False)
    assert together.loadings.dims == ("dataset", "component", "scan_y", "scan_x")
    assert together["dataset"].values.tolist() == ["a", "b"]
    # b's two missing columns are NaN; its own positions are all there
    b = together.loadings.sel(dataset="b")
    assert np.isnan(b.isel(scan_x=slice(8, None))).all()
    assert np.isfinite(b.isel(scan_x=slice(0, 8))).all()
    # one fit over both: the same factorisation as the profiles fitted as one set
    both = nmf([first, second], 2, rescale=False)
    whole = nmf(profiles, 2, rescale=False)
    joined = np.concatenate([both.loadings.values[0], both.loadings.values[1]], axis=1)
    np.testing.assert_allclose(joined, whole.loadings.values, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunks", [{"scan_y": 1}, {"scan_y": 5, "scan_x": 3}, {"q": 7}])
def test_dask_profiles_in_any_chunking_give_the_numpy_result(chunks):
    # nmf computes (an action): dask input is read once and factorised as NumPy input is
    profiles, _, _ = _planted()
    expected = nmf(profiles, 2)
    out = nmf(profiles.chunk(chunks), 2)
    np.testing.assert_array_equal(out.loadings.values, expected.loadings.values)
    np.testing.assert_array_equal(out.components.values, expected.components.values)


def test_minibatch_and_out_of_core_paths(monkeypatch, raise_if_dask_computes):
    profiles, _, weights = _planted((16, 16))
    batch = nmf(profiles, 2, rescale=False, batch_size=64)
    truth = weights[..., 0]
    assert _best_r(batch.loadings.values, truth) > 0.99  # MiniBatchNMF: close, not exact
    # above the memory budget the profiles are read block by block and the loadings stay lazy
    monkeypatch.setattr(decomposition, "MEMORY_BUDGET", 1000)
    lazy = profiles.chunk({"scan_y": 4})
    out = nmf(lazy, 2, rescale=False, batch_size=64, max_iter=50)
    assert isinstance(out.loadings.data, da.Array)
    assert "reconstruction_err" not in out.attrs  # partial_fit keeps none
    with raise_if_dask_computes(max_computes=1):
        loadings = out.loadings.values
    assert _best_r(loadings, truth) > 0.99
    ratio = scree(lazy, max_components=3, rescale=False)  # IncrementalPCA, block by block
    np.testing.assert_allclose(
        ratio.values, scree(profiles.compute(), max_components=3, rescale=False).values, rtol=1e-6
    )


def test_scree_is_the_pca_explained_variance_of_the_prepared_profiles():
    profiles, _, _ = _planted()
    ratio = scree(profiles, max_components=5)
    x = _prepared(profiles["variance"].values)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)  # PCA = SVD of the centred rows
    np.testing.assert_allclose(ratio.values, (s**2 / (s**2).sum())[:5], rtol=1e-8)
    assert ratio.dims == ("component",) and "scree(" in ratio.attrs["history"]
    assert ratio.values[1] > 100 * ratio.values[2]  # two planted phases, then noise


def test_empty_q_bins_are_left_out():
    # bins with no pixel at any position (NaN everywhere) drop out; components are NaN there
    profiles, _, _ = _planted()
    profiles["variance"][..., :3] = np.nan
    out = nmf(profiles, 2)
    assert np.isnan(out.components.values[:, :3]).all()
    assert np.isfinite(out.components.values[:, 3:]).all()


def test_bad_input_raises_beamcat_errors_naming_it():
    profiles, _, _ = _planted((3, 2))
    with pytest.raises(BeamcatError, match=r"planted.zarr.*n_components=7.*6 profiles"):
        nmf(profiles, 7)
    with pytest.raises(BeamcatError, match=r"planted.zarr.*q_range=\(0.5, 3\).*0-1"):
        nmf(profiles, 2, q_range=(0.5, 3))
    with pytest.raises(BeamcatError, match="no 'median' profiles|profile='median'"):
        nmf(profiles, 2, profile="median")
    nan_position = profiles.copy(deep=True)
    nan_position["variance"][1, 0] = np.nan
    with pytest.raises(BeamcatError, match=r"planted.zarr.*1 profiles are NaN in every q bin"):
        nmf(nan_position, 2)
    stray = profiles.copy(deep=True)
    stray["variance"][0, 0, 5] = np.nan
    with pytest.raises(BeamcatError, match="NaN in some q bins"):
        nmf(stray, 2)
    with pytest.raises(BeamcatError, match="negative"):
        nmf(profiles - 5.0, 2, clip=False, rescale=False)
    with pytest.raises(BeamcatError, match="'q'"):
        nmf(profiles["variance"].rename(q="r"), 2)
    other_q = profiles.assign_coords(q=profiles.q * 2)
    with pytest.raises(BeamcatError, match="q bins differ"):
        nmf([profiles, other_q], 2)
    with pytest.raises(BeamcatError, match="empty"):
        nmf([], 2)
