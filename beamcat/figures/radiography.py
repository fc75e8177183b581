"""Radiography figures: the double plot, ROI image, grid heat maps and difference frames.

The figures users of the original IMAT scripts (hamishcavaye/imat_roi_analysis,
04_Figure_Plotting.py, 04b_Grid_Plotting.py, 04c_Difference_Image.py) publish:

- `double_plot`: mass spectrometer (log y, one line per species) and
  temperature (twin axis, dashed) on top, ROI transmission below, one shared
  time axis (elapsed from an origin, or absolute); several runs on one axis.
- `roi_image`: the reference image with coloured, labelled ROIs.
- `grid_heatmap` / `save_grid_frames`: grid cell values (reduced transmission
  or Beer-Lambert concentration) over the reference image, one frame per time
  step, as an image sequence and an animation.
- `difference_frame` / `save_difference_frames`: stretched difference images
  with the elapsed time and a scale bar.

Each topic is its own module (`beamcat.figures.double_plot`,
`beamcat.figures.roi_image`, `beamcat.figures.grid`,
`beamcat.figures.difference`); this module gathers their public names.
Each has an interactive HoloViews twin for notebooks (``*_hv``). Matplotlib
figures are made without pyplot (see `beamcat.figures`); save them with
`beamcat.figures.save_figure`.

Where beamcat departs from the original drawings: rectangles are drawn on the
pixel edges (a ROI ``(x, y, w, h)`` spans ``x - 0.5 .. x + w - 0.5`` in image
coordinates, pixel centres at integers) where the original draws them half a
pixel off; colour limits of a heat-map sequence default to the 1-99 %
percentiles of all frames (fixed across frames so they compare), not (0, 1);
the scale bar is drawn with matplotlib's `AnchoredSizeBar` (no
matplotlib-scalebar dependency) with a round length chosen from the image width.
"""

from __future__ import annotations

from beamcat.figures._common import ROI_COLOURS, scale_bar
from beamcat.figures.difference import difference_frame, difference_hv, save_difference_frames
from beamcat.figures.double_plot import double_plot, double_plot_hv
from beamcat.figures.grid import grid_heatmap, grid_heatmap_hv, save_grid_frames
from beamcat.figures.roi_image import roi_image, roi_image_hv

__all__ = [
    "ROI_COLOURS",
    "difference_frame",
    "difference_hv",
    "double_plot",
    "double_plot_hv",
    "grid_heatmap",
    "grid_heatmap_hv",
    "roi_image",
    "roi_image_hv",
    "save_difference_frames",
    "save_grid_frames",
    "scale_bar",
]
