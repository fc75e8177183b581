"""What a batch job tells its user on stderr: a dask progress bar and step lines."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress", "say"]


def progress(enabled: bool):
    """A dask progress bar on stderr for the computes inside, or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)


def say(enabled: bool, text: str) -> None:
    """One step line on stderr, when the job reports."""
    if enabled:
        print(text, file=sys.stderr)
