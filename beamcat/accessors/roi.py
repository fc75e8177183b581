"""``ds.roi`` / ``da.roi``: ROI and grid statistics of image stacks (see `beamcat.analyses.roi`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses.roi import grid_means, roi_means
from beamcat.analyses.steps import step_means
from beamcat.rois import Roi


class RoiAccessor:
    """ROI means and grid cell means of the signal (``attrs["signal"]``) or of `var`.

    Examples
    --------
    On the demo catalog's IMAT run and FemtoMAX scan:

    >>> import beamcat
    >>> cat = beamcat.open_catalog()
    >>> run = cat["imat_run"].read()
    >>> run.roi.means({"bed": (134, 75, 52, 30)})["mean"].dims
    ('roi', 'frame')
    >>> run.roi.grid(8, 8, region=(120, 60, 80, 140))["mean"].shape  # (row, col, frame)
    (8, 8, 48)
    >>> scan = cat["femtomax_scan"].read()
    >>> scan.roi.step_means({"peak": (100, 100, 40, 40)})["mean"].dims
    ('roi', 'step')
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def means(
        self, rois: Mapping[str, Roi] | Sequence[Roi], *, var: str | None = None
    ) -> xr.Dataset:
        """`beamcat.analyses.roi.roi_means` of the signal: Dataset(mean, std, count) (roi, ...)."""
        return roi_means(pick(self._obj, var), rois)

    def step_means(
        self,
        rois: Mapping[str, Roi] | Sequence[Roi],
        *,
        motor: str | Sequence[str] | None = None,
        var: str | None = None,
    ) -> xr.Dataset:
        """`roi_means` then `beamcat.analyses.steps.step_means`: Dataset over (roi, step)."""
        return step_means(roi_means(pick(self._obj, var), rois), motor=motor)

    def grid(
        self,
        rows: int,
        cols: int,
        *,
        region: Roi | None = None,
        edges: Literal["even", "original"] = "even",
        var: str | None = None,
    ) -> xr.Dataset:
        """`beamcat.analyses.roi.grid_means` of the signal: Dataset over (row, col, ...)."""
        return grid_means(pick(self._obj, var), rows, cols, region=region, edges=edges)


xr.register_dataset_accessor("roi")(RoiAccessor)
xr.register_dataarray_accessor("roi")(RoiAccessor)
