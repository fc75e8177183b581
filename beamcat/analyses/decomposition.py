"""NMF of radial profiles (ePSIC's radial-profile analysis) and a scree helper to choose its size.

Each probe position's radial profile (``mean`` or ``variance`` over ``q`` from
`beamcat.analyses.stem4d.radial_profiles`, or any DataArray ``(..., q)``) is
one row of a matrix that scikit-learn's non-negative matrix factorisation
writes as loadings x components. The preprocessing and settings are the
original's (``radial_profile_analysis.py``, ePSIC User-Notebooks): each profile
rescaled to 0-1 (``(p - min) / (max - min)``), then clipped at 0; ``NMF(init=
"nndsvda", solver="mu", max_iter=2000, tol=1e-4)``, with a fixed random state
here so that a result can be reproduced. (The original also shuffles the rows;
a full-batch NMF does not depend on their order, so they are not shuffled.)

These functions *compute*: they are actions, not lazy steps. The profiles are
read into memory once (a 512 x 512 scan of 200 q bins is 0.4 GB in float64).
When they exceed `MEMORY_BUDGET`, or when ``batch_size`` is given, scikit-learn's
``MiniBatchNMF`` is used instead; above the budget it is fed one block of
``batch_size`` profiles at a time (``partial_fit``, one pass per iteration), so
memory stays bounded by a block, and the loadings come back lazily (dask), one
``transform`` per block. Keep such profiles in a Zarr store: each pass reads
them again.

Examples
--------
>>> q = np.linspace(0.0, 1.0, 40)
>>> phases = np.stack([np.exp(-(((q - c) / 0.05) ** 2)) for c in (0.3, 0.7)])
>>> weights = np.random.default_rng(0).uniform(0.1, 1.0, (6, 5, 2))
>>> profiles = xr.DataArray(weights @ phases, dims=("scan_y", "scan_x", "q"), coords={"q": q})
>>> out = nmf(profiles, 2, rescale=False)
>>> out.components.dims, out.loadings.dims
(('component', 'q'), ('component', 'scan_y', 'scan_x'))
>>> [round(float(q[i]), 2) for i in out.components.argmax("q").values]  # the two peaks
[0.31, 0.69]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr
from dask.utils import parse_bytes

from beamcat.analyses._frames import describe
from beamcat.analyses._history import carried, history
from beamcat.errors import OptionError

__all__ = ["MEMORY_BUDGET", "nmf", "scree"]

#: profiles bigger than this (as float64) are factorised block by block with MiniBatchNMF
MEMORY_BUDGET = parse_bytes("1GiB")
#: profiles per block of the out-of-core path when no `batch_size` is given
_BLOCK = 4096
PROFILES = ("mean", "variance")

Profiles = (
    xr.Dataset
    | xr.DataArray
    | Sequence[xr.Dataset | xr.DataArray]
    | Mapping[str, xr.Dataset | xr.DataArray]
)


# --------------------------------------------------------------- input -> (rows, q)


def _inputs(profiles: Profiles) -> tuple[list[str], list, bool]:
    """(labels, objects, several) of one or several profile sets."""
    if isinstance(profiles, xr.Dataset | xr.DataArray):
        return [describe(profiles, "profiles")], [profiles], False
    if isinstance(profiles, Mapping):
        labels, objs = [str(k) for k in profiles], list(profiles.values())
    elif isinstance(profiles, Sequence) and not isinstance(profiles, str):
        objs = list(profiles)
        labels = [str(getattr(o, "attrs", {}).get("source", i)) for i, o in enumerate(objs)]
        if len(set(labels)) < len(labels):
            labels = [str(i) for i in range(len(objs))]
    else:
        raise OptionError(
            "profiles: expected a Dataset or DataArray (..., q), or a list or dict of them, "
            f"got {type(profiles).__name__}"
        )
    if not objs:
        raise OptionError("profiles: an empty list or dict; expected at least one set of profiles")
    return labels, objs, True


def _select(obj, name: str, profile: str, q_range) -> xr.DataArray:
    """The chosen profiles of one input as a DataArray (..., q), cut to `q_range`."""
    if isinstance(obj, xr.Dataset):
        if profile not in obj.data_vars:
            raise OptionError(
                f"{name}: no {profile!r} profiles; variables are {sorted(map(str, obj.data_vars))}"
            )
        obj = obj[profile].assign_attrs({**obj.attrs, **obj[profile].attrs})
    elif not isinstance(obj, xr.DataArray):
        raise OptionError(f"{name}: expected a Dataset or DataArray, got {type(obj).__name__}")
    if "q" not in obj.dims or obj.ndim < 2:
        raise OptionError(f"{name}: expected profiles with dims (<scan dims>, 'q'), got {obj.dims}")
    obj = obj.transpose(..., "q")
    if q_range is None:
        return obj
    q = np.asarray(obj["q"].values if "q" in obj.coords else np.arange(obj.sizes["q"]), float)
    lo, hi = (float(v) for v in q_range)
    units = obj["q"].attrs.get("units", "") if "q" in obj.coords else "bins"
    if not (q.min() <= lo < hi <= q.max()):
        raise OptionError(
            f"{name}: q_range=({lo:g}, {hi:g}) is not inside the profiles' q "
            f"{q.min():g}-{q.max():g} {units}; expected low < high within it"
        )
    return obj.isel(q=np.flatnonzero((q >= lo) & (q <= hi)))


def _rows(obj: xr.DataArray):
    """The profiles as a (rows, q) float64 array: NumPy, or dask with whole rows per chunk."""
    shape = (-1, obj.sizes["q"])
    if isinstance(obj.data, da.Array):
        return obj.data.rechunk({-1: -1}).astype(np.float64).reshape(shape)
    return np.asarray(obj.values, np.float64).reshape(shape)


def _prepare(x: np.ndarray, keep: np.ndarray, clip: bool, rescale: bool) -> np.ndarray:
    """The original's preprocessing of a (rows, q) block: rescale each row to 0-1, clip at 0."""
    x = np.array(x[:, keep], dtype=np.float64)
    if rescale:
        low = x.min(axis=1, keepdims=True)
        span = x.max(axis=1, keepdims=True) - low
        x = np.divide(x - low, span, out=np.zeros_like(x), where=span > 0)
    return np.clip(x, 0.0, None) if clip else x


def _check_values(matrix, keep, labels, sizes, clip: bool) -> None:
    """OptionError for all-NaN profiles, stray NaN, or negative values without `clip`."""
    x = matrix[:, keep]
    nan_rows = np.isnan(x).all(axis=1)
    any_nan = np.isnan(x).any(axis=1)
    negative = (x < 0).any() if not clip else False
    nan_rows, any_nan, negative = da.compute(nan_rows, any_nan, negative)
    bounds = np.cumsum([0, *sizes])
    for mask, what in ((nan_rows, "NaN in every q bin"), (any_nan, "NaN in some q bins")):
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            k = int(np.searchsorted(bounds, first, side="right") - 1)
            raise OptionError(
                f"{labels[k]}: {int(mask.sum())} profiles are {what} (the first is profile "
                f"{first - bounds[k]} in scan order); expected finite profiles: drop those "
                "positions, or pass q_range to leave their empty bins out"
            )
    if negative:
        raise OptionError(f"{', '.join(labels)}: negative profile values; pass clip=True")


def _matrix(profiles: Profiles, profile: str, q_range, clip: bool, n_components: int | None):
    """Selected inputs, their labels, the raw (rows, q) matrix and the q bins to keep."""
    if profile not in PROFILES:
        raise OptionError(f"profile={profile!r}: expected one of {PROFILES}")
    labels, objs, several = _inputs(profiles)
    selected = [_select(o, n, profile, q_range) for n, o in zip(labels, objs, strict=True)]
    q0 = selected[0]["q"].values if "q" in selected[0].coords else np.arange(selected[0].sizes["q"])
    for name, obj in zip(labels[1:], selected[1:], strict=True):
        q = obj["q"].values if "q" in obj.coords else np.arange(obj.sizes["q"])
        if q.shape != q0.shape or not np.allclose(q, q0):
            raise OptionError(
                f"{name}: its q bins differ from {labels[0]}'s ({q.size} vs {q0.size} bins); "
                "profiles fitted together need the same q (use one q_step/q_max for all)"
            )
    parts = [_rows(o) for o in selected]
    lazy = any(isinstance(p, da.Array) for p in parts)
    matrix = da.concatenate([da.asarray(p) for p in parts]) if lazy else np.concatenate(parts)
    if lazy and not _too_big(matrix):  # read once; the checks and the fit use the copy
        matrix = matrix.compute()
    sizes = [p.shape[0] for p in parts]
    # q bins empty at every position (no pixel at that radius) are left out of the fit
    keep = np.asarray(~np.isnan(matrix).all(axis=0))
    keep = keep.compute() if isinstance(keep, da.Array) else keep
    names = " + ".join(labels)
    if not keep.any():
        raise OptionError(f"{names}: every profile is NaN in every q bin; expected finite values")
    if n_components is not None:
        limit = min(matrix.shape[0], int(keep.sum()))
        if not 1 <= n_components <= limit:
            raise OptionError(
                f"{names}: n_components={n_components} but there are {matrix.shape[0]} profiles "
                f"of {int(keep.sum())} q bins; expected 1 to {limit} components"
            )
    _check_values(matrix, keep, labels, sizes, clip)
    return labels, selected, several, matrix, keep, sizes


def _blocks(matrix, rows: int, min_rows: int = 1) -> Iterator[np.ndarray]:
    """Blocks of `rows` raw profiles, read one at a time; a tail under `min_rows` joins the last."""
    starts = list(range(0, matrix.shape[0], rows))
    if len(starts) > 1 and matrix.shape[0] - starts[-1] < min_rows:
        starts.pop()
    for start, stop in zip(starts, [*starts[1:], matrix.shape[0]], strict=True):
        block = matrix[start:stop]
        yield np.asarray(block.compute() if isinstance(block, da.Array) else block)


def _too_big(matrix) -> bool:
    return matrix.shape[0] * matrix.shape[1] * 8 > MEMORY_BUDGET


# --------------------------------------------------------------------------- NMF


def _fit_out_of_core(model, matrix, keep, clip, rescale, rows, max_iter, tol):
    """MiniBatchNMF over blocks of `rows` profiles, one pass per iteration until H settles."""
    previous, n_iter = None, 0
    while n_iter < max_iter:
        n_iter += 1
        for block in _blocks(matrix, rows):
            model.partial_fit(_prepare(block, keep, clip, rescale))
        h = model.components_.copy()
        if previous is not None and np.linalg.norm(h - previous) <= tol * np.linalg.norm(previous):
            break
        previous = h
    blocks = da.asarray(matrix).rechunk((rows, -1))
    loadings = blocks.map_blocks(
        lambda b: model.transform(_prepare(b, keep, clip, rescale)),
        chunks=(blocks.chunks[0], (model.n_components,)),
        dtype=np.float64,
    )
    return loadings, n_iter


def nmf(
    profiles: Profiles,
    n_components: int,
    *,
    profile: str = "variance",
    q_range: tuple[float, float] | None = None,
    clip: bool = True,
    rescale: bool = True,
    init: str = "nndsvda",
    solver: str = "mu",
    max_iter: int | None = None,
    tol: float = 1e-4,
    random_state: int | None = 0,
    batch_size: int | None = None,
) -> xr.Dataset:
    """Non-negative matrix factorisation of radial profiles (computes).

    Parameters
    ----------
    profiles : Dataset, DataArray (<scan dims>, q), or a list or dict of them
        `radial_profiles` output (variables ``mean``, ``variance`` over
        ``(scan_y, scan_x, q)``) or the profiles themselves. Several inputs are
        fitted together (one set of components) and must share their q bins.
    n_components : int
        Number of components (phases); at most the number of profiles and of q bins.
    profile : "variance" or "mean"
        Which variable of a Dataset to factorise (the original's default: variance).
    q_range : (low, high), optional
        Only q bins within it (units of the ``q`` coordinate), inside the profiles'
        q. Leave the unscattered disc out: rescaled to its maximum, a profile
        that holds the disc keeps the rings at a few % of its range (on the demo
        scan NMF then finds no Au map, |r| 0.03; with ``(0.15, 0.9)`` 1/A, 0.95).
    clip, rescale : bool
        The original's preprocessing: each profile rescaled to 0-1, then clipped at 0.
    init, solver, tol, random_state
        scikit-learn ``NMF`` settings (``MiniBatchNMF`` has no `solver`: it is "mu").
    max_iter : int, optional
        Iterations of ``NMF`` (default 2000, the original's); for ``MiniBatchNMF``
        passes over all profiles (default 200, scikit-learn's: 2000 passes took
        3 min for 16k profiles here).
    batch_size : int, optional
        Use ``MiniBatchNMF`` with batches of this many profiles; it is also used
        (blocks of 4096 profiles by default) when the profiles are bigger than
        `MEMORY_BUDGET`.

    Returns
    -------
    Dataset
        ``components`` (component, q): each scaled to a maximum of 1 (NaN in q
        bins empty at every position); ``loadings`` (component, <scan dims>) or
        (dataset, component, <scan dims>) for several inputs (a ``dataset``
        coordinate with their names or sources; scan positions aligned by their
        coordinates, else their indices; positions one input lacks are NaN).
        Components are ordered by their summed loading, largest first. Attrs:
        ``n_iter``, ``profile``, ``history`` and, unless fitted out of core,
        ``reconstruction_err`` (Frobenius norm of the prepared matrix minus
        its factorisation).

    Raises
    ------
    OptionError
        An unknown `profile`, profiles without a ``q`` dim, a `q_range` outside
        the profiles' q, more components than profiles or q bins, profiles
        that are NaN (entirely, or in bins other profiles have), negative
        values with ``clip=False``, inputs with different q bins.
    """
    from sklearn.decomposition import NMF, MiniBatchNMF

    labels, selected, several, matrix, keep, sizes = _matrix(
        profiles, profile, q_range, clip, n_components
    )
    out_of_core = _too_big(matrix)
    minibatch = out_of_core or batch_size is not None
    max_iter = max_iter or (200 if minibatch else 2000)
    settings = dict(init=init, max_iter=max_iter, tol=tol, random_state=random_state)
    if minibatch:
        rows = batch_size or _BLOCK
        model = MiniBatchNMF(n_components, batch_size=rows, **settings)
        if out_of_core:
            w, n_iter = _fit_out_of_core(model, matrix, keep, clip, rescale, rows, max_iter, tol)
        else:
            w = model.fit_transform(_prepare(np.asarray(matrix), keep, clip, rescale))
            n_iter = model.n_iter_
    else:
        model = NMF(n_components, solver=solver, **settings)
        x = _prepare(np.asarray(matrix), keep, clip, rescale)
        w, n_iter = model.fit_transform(x), model.n_iter_
    h = model.components_
    scale = np.where(h.max(axis=1) > 0, h.max(axis=1), 1.0)
    components = np.full((n_components, keep.size), np.nan)
    components[:, keep] = h / scale[:, None]
    w = w * scale
    order = np.argsort(-np.asarray(w.sum(axis=0)), kind="stable")
    components, w = components[order], w[:, order]
    return _result(
        components,
        w,
        labels,
        selected,
        several,
        sizes,
        attrs={
            "profile": profile,
            "n_iter": int(n_iter),
            # partial_fit (the out-of-core path) keeps no error: it would take another pass
            **({"reconstruction_err": float(model.reconstruction_err_)} if not out_of_core else {}),
            "history": history(
                selected[0].attrs,
                f"nmf(n_components={n_components}, profile={profile!r}, q_range={q_range}, "
                f"clip={clip}, rescale={rescale}, init={init!r}, solver={solver!r}, "
                f"max_iter={max_iter}, tol={tol}, random_state={random_state}, "
                f"batch_size={batch_size})",
            ),
        },
    )


def _result(components, w, labels, selected, several, sizes, attrs) -> xr.Dataset:
    """Components and per-input loading maps in one Dataset."""
    n = components.shape[0]
    q = selected[0]["q"]
    maps = []
    start = 0
    for obj, size in zip(selected, sizes, strict=True):
        nav = obj.dims[:-1]
        part = w[start : start + size].T.reshape((n, *(obj.sizes[d] for d in nav)))
        start += size
        coords = {k: c for k, c in obj.coords.items() if set(c.dims) <= set(nav)}
        if several:  # aligned by position index: per-frame coords (time, exposure) stay out
            coords = {d: obj[d] if d in obj.coords else np.arange(obj.sizes[d]) for d in nav}
        maps.append(xr.DataArray(part, dims=("component", *nav), coords=coords))
    loadings = (
        xr.concat(maps, dim="dataset", join="outer", coords="minimal").assign_coords(dataset=labels)
        if several
        else maps[0]
    )
    loadings.attrs.update(long_name="NMF loading", units="1")
    return xr.Dataset(
        {
            "components": xr.DataArray(
                components,
                dims=("component", "q"),
                coords={"q": q},
                attrs={"long_name": "NMF component (max 1)", "units": "1"},
            ),
            "loadings": loadings,
        },
        coords={"component": np.arange(n)},
        attrs={**carried(selected[0].attrs), **attrs},
    )


# ------------------------------------------------------------------------- scree


def scree(
    profiles: Profiles,
    *,
    max_components: int = 20,
    profile: str = "variance",
    q_range: tuple[float, float] | None = None,
    clip: bool = True,
    rescale: bool = True,
    random_state: int | None = 0,
) -> xr.DataArray:
    """PCA explained-variance ratio of the prepared profiles, to choose `n_components` (computes).

    The profiles are prepared as `nmf` prepares them. Where the curve flattens,
    further components describe noise. Profiles bigger than `MEMORY_BUDGET` go
    through ``IncrementalPCA`` block by block.

    Parameters
    ----------
    profiles, profile, q_range, clip, rescale
        As for `nmf`.
    max_components : int
        Components computed (fewer when there are fewer profiles or q bins).
    random_state : int, optional
        For PCA's randomised solver.

    Returns
    -------
    DataArray (component,)
        Fraction of the variance each principal component explains, decreasing.

    Examples
    --------
    >>> values = np.random.default_rng(0).random((4, 5, 30))
    >>> scree(xr.DataArray(values, dims=("scan_y", "scan_x", "q")), max_components=3).sizes
    Frozen({'component': 3})
    """
    from sklearn.decomposition import PCA, IncrementalPCA

    labels, selected, _, matrix, keep, _ = _matrix(profiles, profile, q_range, clip, None)
    n = min(max_components, matrix.shape[0], int(keep.sum()))
    if n < 1:
        raise OptionError(f"max_components={max_components}: expected at least 1")
    if _too_big(matrix):
        model = IncrementalPCA(n_components=n)
        for block in _blocks(matrix, _BLOCK, min_rows=n):
            model.partial_fit(_prepare(block, keep, clip, rescale))
    else:
        model = PCA(n_components=n, random_state=random_state)
        model.fit(_prepare(np.asarray(matrix), keep, clip, rescale))
    return xr.DataArray(
        model.explained_variance_ratio_,
        dims="component",
        coords={"component": np.arange(n)},
        name="explained_variance_ratio",
        attrs={
            "long_name": "explained variance ratio",
            "units": "1",
            "history": history(
                selected[0].attrs,
                f"scree(max_components={max_components}, profile={profile!r}, "
                f"q_range={q_range}, clip={clip}, rescale={rescale})",
            ),
        },
    )
