"""Photon and accumulation figures: clean image, energy histogram, step means, accumulated image.

The figures of FemtoMAX's single-photon and accumulation workflow
(maxiv-science/drp-femtomax, whose live viewer shows the same four):

- `clean_image_figure`: photons per pixel (`beamcat.analyses.photon.clean_image`)
  with the analysis ROI outlined, the photon count and a scale bar.
- `energy_histogram_figure`: the events' energy histogram
  (`beamcat.analyses.photon.histogram`) with the energy cuts as labelled
  vertical lines and the single-photon peak marked; optional log y.
- `step_means_figure`: ROI means against the motor position with error bars
  (the spread of the frames within a step; `beamcat.analyses.steps.step_means`),
  one colour per ROI.
- `accumulated_figure`: the accumulated image (`beamcat.analyses.accumulate`)
  with its frame count, robust colour limits and optional block-max
  downsampling for display.

Each topic is its own module (`beamcat.figures.clean_image`,
`beamcat.figures.energy_histogram`, `beamcat.figures.step_means`,
`beamcat.figures.accumulated`); this module gathers their public names.
Each has an interactive HoloViews twin for notebooks (``*_hv``). Matplotlib
figures are made without pyplot (see `beamcat.figures`); save them with
`beamcat.figures.save_figure`. Images are drawn with pixel centres at integer
(x, y), rows downwards, axes in detector pixels.

Choices: detector gaps and defects (negative values: a Pilatus flags them -1
and -2, which accumulate to -N and -2N) and NaN are masked in the accumulated
image (drawn light grey) and left out of its colour limits, as are the hottest
0.1 % of the pixels; the log scale is linear below the lowest 1 % of the
positive pixels (`SymLogNorm`) so that empty pixels stay the darkest colour
instead of turning into holes. The pixel `threshold` of a detection is not an
energy (it applies to single pixels, the histogram is of 3 x 3 sums), so it is
written in the histogram's legend, not drawn as a line.
"""

from __future__ import annotations

from beamcat.figures.accumulated import AUTO_PIXELS, accumulated_figure, accumulated_hv
from beamcat.figures.clean_image import clean_image_figure, clean_image_hv
from beamcat.figures.energy_histogram import energy_histogram_figure, energy_histogram_hv
from beamcat.figures.step_means import step_means_figure, step_means_hv

__all__ = [
    "AUTO_PIXELS",
    "accumulated_figure",
    "accumulated_hv",
    "clean_image_figure",
    "clean_image_hv",
    "energy_histogram_figure",
    "energy_histogram_hv",
    "step_means_figure",
    "step_means_hv",
]
