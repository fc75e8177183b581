"""Whole jobs: catalog entries in, files and figures out; shared by the CLI and the pages.

A workflow chains the analyses (`beamcat.analyses`, through the accessors where
that reads better), writes tables and stores, and draws the figures
(`beamcat.figures`) of one kind of experiment, so that ``beamcat <job>`` on the
command line and the job's Panel page run the same code. The floor sits above
`beamcat.figures` and beside `beamcat.live`; only `beamcat.apps` and
`beamcat.cli` import it.

Modules
-------
`beamcat.workflows.radiography`
    `run_radiography` (``beamcat radiography``): dark/flat masters, calibration,
    ROI and grid means in one pass, the original CSV tables, Zarr stores, the ROI
    image, the double plot, grid and difference image sequences.
`beamcat.workflows.original_csv`
    `to_original_csv`: the original IMAT scripts' ``<run>_greyvalues.csv`` layout.
`beamcat.workflows.calibration_entries`
    Which catalog entries are a run's dark, flat and logs (the Radiography page's
    guess, which ``beamcat radiography`` uses when ``--dark``/``--flat`` are omitted).

The gain-map, 4D-STEM and SPICE jobs will live here too.
"""
