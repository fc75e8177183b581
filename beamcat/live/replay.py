"""Replay a recorded stream through the live pipeline and write its results (``beamcat replay``).

`run_replay` plays a recording (`beamcat.catalog.cbor_stream.replay`) frame by
frame through a `beamcat.live.pipeline.LivePipeline`; `write_results` writes the
pipeline's state as Zarr stores, a photon list and PNG figures. matplotlib is
imported only when figures are written, so the dranspose reducer that uses
`write_results` does not pull it in at import time.

Examples
--------
>>> summary = run_replay("drp_femtomax/", mode="image", out="results/")  # doctest: +SKIP
>>> summary.frames, summary.written["accumulated"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from beamcat.catalog.cbor_stream import replay
from beamcat.catalog.photon_list import write_photon_list
from beamcat.catalog.zarr_store import to_zarr
from beamcat.errors import BeamcatWarning, FormatError, OptionError
from beamcat.live.pipeline import LivePipeline
from beamcat.rois import Roi

__all__ = ["ReplaySummary", "run_replay", "write_results"]

_PIXELS = ("y", "x")


@dataclass(frozen=True)
class ReplaySummary:
    """What `run_replay` did: the pipeline after the last frame, timings and files written."""

    pipeline: LivePipeline
    frames: int
    seconds: float
    written: dict[str, Path]

    @property
    def rate(self) -> float:
        """Frames per second of wall time (decoding included)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _progress_line(live: LivePipeline, started: float) -> str:
    elapsed = time.perf_counter() - started
    lat = live.latency()
    rate = live.frames / elapsed if elapsed > 0 else float("nan")
    text = f"frames {live.frames:6d}  {rate:7.1f} frames/s"
    if lat["n"]:
        text += f"  latency {lat['mean'] * 1e3:6.1f} ms (max {lat['max'] * 1e3:.1f} ms)"
    return text + f"  accumulated {live.accumulator.count}"


def run_replay(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    realtime: bool = False,
    speed: float = 1.0,
    stream: str | None = None,
    rois: Mapping[str, Roi] | Sequence[Roi] | str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
    every: float = 1.0,
    **options,
) -> ReplaySummary:
    """Play a recorded stream frame by frame through a `LivePipeline`; write its results.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        The recording's stream files (detector and sardana), as for
        `beamcat.catalog.cbor_stream.replay`.
    out : path, optional
        Folder for the results (see `write_results`); nothing written when None.
    realtime, speed : bool, float
        Play at the recorded pace (times `speed`) instead of as fast as possible.
    stream : str, optional
        The detector stream, when the files hold several.
    rois : mapping, sequence, or a ROI file (JSON/CSV, see `beamcat.analyses.roi.load_rois`)
        ROIs for the step means.
    overwrite : bool
        Replace results already in `out`.
    progress : callable, optional
        Called with a line (frames, rate, latency) about every `every` seconds
        and at the end; None for silence.
    **options
        `LivePipeline` options (``mode``, ``background``, ``threshold``,
        ``energy_min`` ...).

    Returns
    -------
    ReplaySummary
        The pipeline (`LivePipeline.snapshot` for the numbers), frames, time and
        files written.

    Raises
    ------
    FormatError
        A recording that is not one, or holds no image (an empty recording).
    OptionError
        Bad pipeline options, or results already in `out` without `overwrite`.
    """
    from beamcat.rois import load_rois

    if isinstance(rois, str | os.PathLike):
        rois = load_rois(rois)
    live = LivePipeline(rois=rois, **options)
    started = last_print = time.perf_counter()
    for event in replay(source, realtime=realtime, speed=speed, stream=stream):
        live.process(event)
        now = time.perf_counter()
        if progress is not None and live.frames and now - last_print >= every:
            progress(_progress_line(live, started))
            last_print = now
    seconds = time.perf_counter() - started
    if live.frames == 0:
        raise FormatError(f"{source}: the recording holds no image frame; nothing to replay")
    if progress is not None:
        progress(_progress_line(live, started))
    density = live.snapshot()["density"]
    if density.get("dense"):
        warnings.warn(
            f"{source}: {density['over_threshold_fraction']:.2%} of the analysed pixels above "
            f"threshold, {density['pileup_fraction']:.2%} pile-ups: too dense for single-photon "
            "counting",
            BeamcatWarning,
            stacklevel=2,
        )
    written = write_results(live, out, overwrite=overwrite) if out is not None else {}
    return ReplaySummary(live, live.frames, seconds, written)


def write_results(
    live: LivePipeline, out: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write a pipeline's results into the folder `out`.

    Files: ``accumulated.zarr`` (``sum (y, x)``, ``count``, attrs ``pixel_size``,
    the stream header's ``energy``, ``filename`` ...) when a frame was
    accumulated; ``step_means.zarr`` (the
    step table) when there are ROIs; in photon mode ``photon.zarr``
    (``clean_image (y, x)``, ``histogram (energy)``) and the photon list
    ``<raw file stem>_integrated.h5`` (`beamcat.catalog.photon_list.write_photon_list`,
    the original's name; ``photons_integrated.h5`` when the header names no file).
    Each result also as a PNG figure (`beamcat.figures.photon`): ``accumulated.png``,
    ``step_means.png``, ``clean_image.png``, ``energy_histogram.png``.

    Returns
    -------
    dict of str to Path
        ``"accumulated"``, ``"step_means"``, ``"photon"``, ``"photon_list"`` and
        the figures ``"accumulated_png"`` ... -> path.

    Raises
    ------
    OptionError
        A file exists and not `overwrite`.
    """
    out = Path(out)
    view = live.snapshot()
    attrs = {k: v for k, v in live.header.items() if v is not None and k != "pixel_size"}
    attrs["mode"] = live.mode
    written = {}
    if view["count"]:
        written["accumulated"] = to_zarr(
            live.accumulator.to_dataset(attrs), out / "accumulated.zarr", overwrite=overwrite
        )
    if view["step_table"] is not None:
        written["step_means"] = to_zarr(
            view["step_table"], out / "step_means.zarr", overwrite=overwrite
        )
    if live.mode == "photon":
        cut = {"units": "photons", "energy_min": live.detect_options["energy_min"]}
        if live.detect_options["roi"] is not None:  # outlined in the figure
            cut["roi"] = list(live.detect_options["roi"])
        clean = xr.DataArray(view["clean_image"], dims=_PIXELS, attrs=cut)
        result = xr.Dataset({"clean_image": clean, "histogram": view["histogram"]}, attrs=attrs)
        written["photon"] = to_zarr(result, out / "photon.zarr", overwrite=overwrite)
        raw = live.header.get("filename")
        name = f"{Path(raw).stem if raw else 'photons'}_integrated.h5"
        written["photon_list"] = write_photon_list(
            live.events(), out / name, raw_file=raw, overwrite=overwrite
        )
    from beamcat.figures import photon as figures  # matplotlib only when writing figures

    figs = {}
    if "accumulated" in written:
        figs["accumulated"] = figures.accumulated_figure(
            live.accumulator.to_dataset(), pixel_size=view["pixel_size"], downsample="auto"
        )
    if "step_means" in written:
        figs["step_means"] = figures.step_means_figure(view["step_table"])
    if "photon" in written:
        figs["clean_image"] = figures.clean_image_figure(clean, pixel_size=view["pixel_size"])
        figs["energy_histogram"] = figures.energy_histogram_figure(view["histogram"])
    return written | _write_figures(figs, out, overwrite=overwrite)


def _write_figures(figs: Mapping, out: Path, *, overwrite: bool) -> dict[str, Path]:
    """Save the figures (name -> Figure) as ``out/<name>.png``; keys ``"<name>_png"``."""
    from beamcat.figures import save_figure

    written = {}
    for name, fig in figs.items():
        path = out / f"{name}.png"
        if path.exists() and not overwrite:
            raise OptionError(f"{path}: exists; pass overwrite=True to replace it")
        (written[f"{name}_png"],) = save_figure(fig, path, dpi=200)
    return written
