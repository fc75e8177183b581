"""Publication figures (matplotlib) and their interactive HoloViews twins.

Figures are `matplotlib.figure.Figure` objects made without pyplot: no global
state and no GUI backend, so they are safe in batch jobs and threads, and a
notebook shows a returned Figure inline. `save_figure` writes one figure in
several formats and `save_frames` an image sequence plus an animation, every
file atomically (complete under its name, or absent).

`block_reduce` shrinks a big detector image for display (by block maximum, so
single hot pixels and photons stay visible).

Modules: `beamcat.figures.radiography` gathers the radiography figures
(`double_plot`, `roi_image`, `grid`, `difference`), `beamcat.figures.photon`
the photon and accumulation figures (`clean_image`, `energy_histogram`,
`step_means`, `accumulated`); `beamcat.figures.saving` writes files. Figures
import analyses (and catalog helpers) only, never a workflow or a page.
"""

from __future__ import annotations

import numpy as np

from beamcat.errors import OptionError
from beamcat.figures.saving import FORMATS, save_figure, save_frames

__all__ = ["FORMATS", "block_reduce", "save_figure", "save_frames"]


def block_reduce(image: np.ndarray, factor: int, *, how: str = "max") -> np.ndarray:
    """Reduce an image by blocks of ``factor x factor`` pixels (partial blocks at the edges).

    Parameters
    ----------
    image : ndarray (y, x)
    factor : int
        Block size; 1 returns the image as float64.
    how : {"max", "mean"}
        "max" keeps a block's largest value (NaN ignored), so a single hot pixel
        stays visible; "mean" averages it.

    Returns
    -------
    ndarray (ceil(ny / factor), ceil(nx / factor)) float64

    Examples
    --------
    >>> block_reduce(np.array([[1, 5, 2], [0, 3, 9]]), 2).tolist()
    [[5.0, 9.0]]
    """
    image = np.asarray(image, dtype=np.float64)
    if how not in ("max", "mean"):
        raise OptionError(f"how={how!r}: expected 'max' or 'mean'")
    if factor <= 1:
        return image
    rows, cols = (np.arange(0, n, factor) for n in image.shape)
    if how == "max":
        return np.fmax.reduceat(np.fmax.reduceat(image, rows, axis=0), cols, axis=1)
    sums = np.add.reduceat(np.add.reduceat(image, rows, axis=0), cols, axis=1)
    sizes = [
        np.diff(np.append(edges, n)) for edges, n in zip((rows, cols), image.shape, strict=True)
    ]
    return sums / np.outer(*sizes)
