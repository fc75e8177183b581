"""The radiography page's HoloViews elements: reference image, curves under the logs, grid, frames.

Built on the server's event loop from NumPy-backed results
(`beamcat.apps.radiography_data`). Images put pixel i at [i, i + 1) on each axis
(row 0 on top), so ROI boxes drawn with the mouse snap to pixel edges.

The HoloViews twins in `beamcat.figures.radiography` do not serve this page:
they put pixel centres on integers (the boxes would be half a pixel off), plot
elapsed time rather than the logs' clock time, compute every frame up front
(`grid_heatmap_hv`) or on the event loop (`difference_hv`), and draw fixed ROI
outlines where this page needs the editable boxes of `RoiEditor`.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import xarray as xr

from beamcat.apps.quicklook import robust_limits

#: y dimension of each log plot
LOG_DIMS = {
    "massspec": hv.Dimension("pressure", label="partial pressure"),
    "temperature": hv.Dimension("temperature", label="temperature"),
}


def image_element(data: xr.DataArray, *, clim: tuple[float, float], height: int = 384) -> hv.Image:
    """A (y, x) image with pixel i spanning [i, i + 1) on each axis, row 0 on top."""
    ny, nx = data.shape
    xs, ys = np.arange(nx) + 0.5, np.arange(ny) + 0.5
    wide = nx * height > ny * 480
    return hv.Image((xs, ys, data.values), ["x", "y"], "value").opts(
        cmap="gray",
        clim=clim,
        invert_yaxis=True,
        data_aspect=1,
        **({"frame_width": 480} if wide else {"frame_height": height}),
        colorbar=True,
        tools=["hover"],
    )


def reference_overlay(reference: xr.DataArray | None, *layers) -> hv.Overlay:
    """The reference image (a blank one before any) under `layers`, box editing active."""
    if reference is None:
        image = image_element(xr.DataArray(np.zeros((64, 64))), clim=(0.0, 1.0))
    else:
        image = image_element(reference, clim=robust_limits(reference.values))
    title = reference.attrs["preview"] if reference is not None else "Reference image"
    overlay = image
    for layer in layers:
        overlay = overlay * layer
    return overlay.opts(active_tools=["box_edit", "wheel_zoom"], title=title)


def grid_element(data: xr.DataArray | None, shape: tuple[int, int]) -> hv.QuadMesh:
    """Grid cell means of one frame (row, col) over the image; invisible without a grid."""
    if data is None:  # invisible placeholder: the overlay keeps its layers
        ny, nx = shape
        return hv.QuadMesh(([0, nx], [0, ny], np.zeros((1, 1))), ["x", "y"]).opts(alpha=0)
    xe = _edges(data["roi_x"].values, data["roi_w"].values)
    ye = _edges(data["roi_y"].values, data["roi_h"].values)
    return hv.QuadMesh((xe, ye, data.values), ["x", "y"], "cell").opts(
        cmap="viridis", alpha=0.55, tools=["hover"]
    )


def log_overlay(curves: list[xr.DataArray], key: str, title: str) -> hv.Overlay:
    """A log's variables (mass spectrometer or temperature) against clock time."""
    dim = LOG_DIMS[key]
    units = curves[0].attrs.get("units", "")
    return hv.Overlay(
        [
            hv.Curve((c[c.dims[0]].values, c.values), c.dims[0], dim, label=str(c.name))
            for c in curves
        ]
    ).opts(
        ylabel=f"{dim.label} ({units})" if units else dim.label,
        logy=key == "massspec" and _positive(curves),
        height=200,
        responsive=True,
        legend_position="right",
        title=title,
    )


def roi_overlay(values: xr.DataArray, dim: str, quantity: str, colors: dict[str, str]):
    """One curve per ROI (roi, time) in its box's colour."""
    vdim = hv.Dimension(quantity, unit=values.attrs.get("units"))
    x = values[dim].values
    curves = [
        hv.Curve((x, values.sel(roi=n).values), dim, vdim, label=str(n)).opts(color=colors[n])
        for n in values["roi"].values
    ]
    return hv.Overlay(curves).opts(
        height=280, responsive=True, legend_position="right", title=f"ROI {quantity}"
    )


def grid_cells_element(grid: xr.DataArray, dim: str, quantity: str) -> hv.QuadMesh:
    """The grid cells (row-major) over time as a heat map."""
    cells = grid.stack(cell=("row", "col")).transpose("cell", dim)
    x = grid[dim].values
    xe = np.append(x, x[-1] + (x[-1] - x[-2] if x.size > 1 else 1))
    return hv.QuadMesh(
        (xe, np.arange(cells.sizes["cell"] + 1), cells.values),
        [dim, "cell"],
        hv.Dimension(quantity),
    ).opts(
        cmap="viridis",
        colorbar=True,
        height=220,
        responsive=True,
        title="grid cells (row-major) over time",
        tools=["hover"],
    )


def difference_element(frame: xr.DataArray, index: int, reference: int) -> hv.Image:
    """One difference display frame (stretched to 0-1), titled with its frame and time."""
    when = ""
    if "time" in frame.coords:
        when = f" at {pd.Timestamp(frame['time'].values):%Y-%m-%d %H:%M:%S} UTC"
    return image_element(frame, clim=(0.0, 1.0)).opts(
        title=f"Difference frame {index} − frame {reference}{when} (stretched 2–95 %)",
        colorbar=True,
    )


def _edges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cell edges (n + 1,) from cell starts and sizes (grid cells tile their region)."""
    return np.append(starts, starts[-1] + sizes[-1]).astype(float)


def _positive(curves: list[xr.DataArray]) -> bool:
    values = np.concatenate([np.asarray(c.values, dtype=float) for c in curves])
    values = values[np.isfinite(values)]
    return bool(values.size) and bool((values > 0).all())
