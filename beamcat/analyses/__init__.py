"""Pure analyses: NumPy/xarray in, xarray out; numba kernels, each with a NumPy twin.

The shared reductions every statistic goes through:

- `moments`: the count/mean/M2 chunk-combine-finalise convention and the
  frame-sum reduction (ROI and grid means, calibrated means, masters, `accumulate`);
- `labels`: the per-pixel-label reduction (per-label sum, sum of squares, count
  over any leading dims), for azimuthal integration, radial profiles and masked
  statistics;
- `region_stats`: the ROI statistics kernel (rectangles and masks, two-pass M2).

Each kernel family has a ``KERNELS`` table (kernel -> NumPy twin) that the
tests and ``benchmarks/labels.py`` run over. `_frames` is the one home of what
every analysis checks or picks (the signal variable, the ``(y, x)`` pixel dims,
a reference frame); `_history` of the provenance attrs. One topic per module:
`masters`, `outliers`, `calibration`, `difference`, `calibrated_means`, `roi`,
`steps`, `accumulate`, `detector`, `photon`, `timeseries`, `timeline`. Files are
read and written in `beamcat.catalog` (Zarr stores: `catalog.zarr_store.to_zarr`).
ROI files and the `Rect` type live on the ground floor, in `beamcat.rois`.
Nothing here imports `beamcat.catalog`, an accessor, a figure or a page.
"""
