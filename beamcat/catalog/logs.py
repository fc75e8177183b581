"""Experiment logs recorded beside detector data, on one UTC time axis.

Readers (the ``massspec-csv``, ``temperature-log`` and ``imat-log`` formats of
`beamcat.open_dataset`) return ``(time,)`` Datasets whose ``time`` is UTC, so
the logs of one experiment align when opened with the same ``timezone``.
Writers produce files in the same layout as the real exports (for the demo
data set and tests).
"""

from beamcat.catalog.imatlog import open_imat_log, write_imat_log
from beamcat.catalog.massspec import open_massspec_csv, write_massspec_csv
from beamcat.catalog.templog import open_temperature_log, write_temperature_log

__all__ = [
    "open_imat_log",
    "open_massspec_csv",
    "open_temperature_log",
    "write_imat_log",
    "write_massspec_csv",
    "write_temperature_log",
]
