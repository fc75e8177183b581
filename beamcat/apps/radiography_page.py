"""The radiography page: calibrate a run, draw ROIs, follow their transmission beside the logs.

Pick a run (an image stack of the catalog) and its dark and flat entries
(guessed from the entries' names and metadata); the page shows the calibrated
reference image, on which ROIs are drawn, moved and deleted with the mouse
(bokeh's box-edit tool: shift + drag draws a box, drag moves one, tap then
Backspace deletes it) and resized by editing their numbers in the table beside
it. Below the logs (mass spectrometer, temperature) the ROIs' transmission
curves follow every change, on a shared time axis. A grid of cells, Beer-Lambert
concentrations and difference frames (a player over time) are one toggle away;
ROI sets are saved and loaded as JSON (or CSV).

Work is split as in the catalog page: everything that reads pixels runs in a
worker thread (a spinner shows) and returns NumPy-backed results; bokeh objects
are built on the event loop. Only bounded results are computed: the masters
(once per dark/flat choice), the reference image, ROI and grid means over time
(chunk/combine reductions, cached per ROI rectangle) and one difference frame at
a time. A bad choice shows an alert and leaves the rest of the page working.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import dask
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import xarray as xr

from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.difference import difference
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.analyses.timeseries import beer_lambert, normalise
from beamcat.apps.quicklook import preview_timeseries, robust_limits, signal_name
from beamcat.apps.roi_editor import RoiEditor, show_message
from beamcat.apps.state import AppState, CatalogContext, error_message
from beamcat.errors import BeamcatError, OptionError
from beamcat.rois import Rect, check_rect

NONE = "(none)"
WHOLE_IMAGE = "whole image"
#: words in an entry's name or description that mark its role
ROLE_WORDS = {"dark": ("dark",), "flat": ("flat", "open beam", "open-beam", "openbeam")}
LOG_FORMATS = {"massspec": "massspec-csv", "temperature": "temperature-log"}
#: the original scripts' example: 1.3 cm bed, H2 (two H atoms of 82.574 b)
THICKNESS_CM = 1.3
CROSS_SECTION_BARN = 2 * 82.574


# --------------------------------------------------------------------------- entries


def image_stacks(context: CatalogContext) -> list[str]:
    """Entries whose signal is a stack of frames ``(frame or time, y, x)``."""
    stacks = []
    for name in context.names:
        dims = context.summary(name)["dims"].split(", ")
        if len(dims) == 3 and dims[1:] == ["y", "x"]:
            stacks.append(name)
    return stacks


def _text(context: CatalogContext, name: str) -> str:
    return f"{name} {context.rows[name]['metadata'].get('description', '')}".lower()


def _role(context: CatalogContext, name: str) -> str | None:
    text = _text(context, name)
    return next((r for r, words in ROLE_WORDS.items() if any(w in text for w in words)), None)


def _affinity(context: CatalogContext, name: str, run: str | None) -> int:
    """How surely `name` belongs to `run`: same ``run`` metadata (2), same name prefix (1)."""
    if run is None:
        return 0
    meta = context.rows[name]["metadata"]
    same_run = meta.get("run") not in (None, "") and meta.get("run") == context.rows[run][
        "metadata"
    ].get("run")
    return 2 * same_run + (name.split("_")[0] == run.split("_")[0])


def _closest(context: CatalogContext, names: list[str], run: str | None) -> str | None:
    """The entry of `names` closest to `run` (first by name among equals); None if none."""
    if not names:
        return None
    return max(names, key=lambda n: (_affinity(context, n, run), [-ord(c) for c in n]))


def default_entries(
    context: CatalogContext, stacks: list[str], *, run: str | None = None
) -> dict[str, str | None]:
    """Default run, dark, flat, mass-spec and temperature entries.

    Darks and flats are the stacks whose name or description says so ("dark",
    "flat", "open beam"); logs are entries of the mass-spec and temperature-log
    formats. Among candidates, the one sharing the run's ``run`` metadata, then
    its name prefix (``imat_`` of ``imat_run``), wins. Without a `run`, the first
    stack that has a dark and a flat of its own is the run.

    Returns
    -------
    dict
        Keys ``run``, ``dark``, ``flat``, ``massspec``, ``temperature``; None
        where the catalog has no candidate.
    """
    by_role = {r: [n for n in stacks if _role(context, n) == r] for r in ROLE_WORDS}
    runs = [n for n in stacks if _role(context, n) is None]
    if run is None:
        own = [
            n
            for n in runs
            if all(any(_affinity(context, c, n) for c in by_role[r]) for r in ROLE_WORDS)
        ]
        run = (own or runs or [None])[0]
    out: dict[str, str | None] = {"run": run}
    out |= {r: _closest(context, by_role[r], run) for r in ROLE_WORDS}
    for key, fmt in LOG_FORMATS.items():
        logs = [n for n in context.names if context.rows[n]["format"] == fmt]
        out[key] = _closest(context, logs, run)
    return out


def _frames(context: CatalogContext, name: str) -> xr.DataArray:
    """The entry's signal as (frame, y, x), with its source for messages."""
    ds = context.open(name)
    frames = ds[signal_name(ds)]
    if frames.ndim != 3 or frames.dims[1:] != ("y", "x"):
        raise OptionError(
            f"entry {name!r} ({ds.attrs.get('source', '')}): expected a stack of frames "
            f"(frame, y, x), got dims {frames.dims}"
        )
    return frames.assign_attrs(source=ds.attrs.get("source", name))


# --------------------------------------------------------------------------- computations


class Calibrated(NamedTuple):
    """A run's lazy transmission, what it was made from and what the page shows of it.

    Attributes
    ----------
    key : tuple
        ``(run, dark, flat, air ROI, reference frames)``: what it was made from.
    transmission : DataArray (time, y, x) or (frame, y, x)
        Lazy `calibrate` output.
    reference : DataArray (y, x)
        Mean transmission of the first frames, NumPy-backed.
    frames, dark, flat : DataArray
        The raw frames and the masters calibrated, for `means`.
    """

    key: tuple
    transmission: xr.DataArray
    reference: xr.DataArray
    frames: xr.DataArray
    dark: xr.DataArray
    flat: xr.DataArray

    def means(self, **regions) -> dict[str, xr.Dataset]:
        """`calibrated_means` of `regions` (``rois=``, ``grid=``...): one pass, lazy."""
        air = self.key[3]
        return calibrated_means(self.frames, self.dark, self.flat, air_roi=air, **regions)

    @property
    def dim(self) -> str:
        """The frame dim: ``time`` when the run has frame times, else ``frame``."""
        return self.transmission.dims[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the frames."""
        return self.transmission.shape[-2:]


def compute_masters(
    context: CatalogContext, dark: str, flat: str
) -> tuple[xr.DataArray, xr.DataArray]:
    """Master dark and dark-subtracted master flat of two entries, computed (y, x) float32."""
    dark_frames, flat_frames = _frames(context, dark), _frames(context, flat)
    d = dark_master(dark_frames)
    d, f = dask.compute(d, flat_master(flat_frames, d))
    return d.assign_attrs(source=dark_frames.attrs["source"]), f.assign_attrs(
        source=flat_frames.attrs["source"]
    )


def roi_series(
    calibrated: Calibrated, rois: Mapping[str, Rect], cache: dict[Rect, np.ndarray]
) -> tuple[xr.DataArray | None, dict[str, str]]:
    """Mean transmission of each ROI over time, computing only ROIs not in `cache`.

    Parameters
    ----------
    calibrated : Calibrated
        The calibrated run (means in one pass over its raw frames).
    rois : mapping name -> Rect
    cache : dict Rect -> ndarray (time,)
        Means already computed for this `transmission`; filled in place.

    Returns
    -------
    DataArray (roi, time) or None
        Means of the valid ROIs (None when there is none), with the frame coordinates.
    dict
        ROI name -> error message, for ROIs that cannot be measured (outside the
        image, empty).
    """
    errors, todo = {}, {}
    for name, rect in rois.items():
        if rect in cache or rect in todo.values():
            continue
        try:
            check_rect(rect, calibrated.shape, f"ROI {name!r}")
        except BeamcatError as err:
            errors[name] = error_message(err)
            continue
        todo[name] = rect
    if todo:
        means = calibrated.means(rois=todo)["rois"]["mean"].compute()
        for name, rect in todo.items():
            cache[rect] = means.sel(roi=name).values
    good = [n for n in rois if n not in errors]
    if not good:
        return None, errors
    dim = calibrated.dim
    series = xr.DataArray(
        np.stack([cache[rois[n]] for n in good]),
        dims=("roi", dim),
        coords={"roi": good, **{k: v for k, v in calibrated.transmission[dim].coords.items()}},
        attrs={"units": "1", "long_name": "transmission"},
    )
    return series, errors


def concentration(
    values: xr.DataArray, dim: str, *, thickness_cm: float, cross_section_barn: float
) -> tuple[xr.DataArray, str | None]:
    """Beer-Lambert concentration of transmissions normalised to the first frame.

    Returns the concentration (mmol/cm3) and a warning text (T <= 0 samples) or None.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = beer_lambert(
            normalise(values, dim=dim, reference=0),
            thickness_cm=thickness_cm,
            cross_section_barn=cross_section_barn,
        )
    return out, "; ".join(str(w.message) for w in caught) or None


def _edges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Cell edges (n + 1,) from cell starts and sizes (grid cells tile their region)."""
    return np.append(starts, starts[-1] + sizes[-1]).astype(float)


# --------------------------------------------------------------------------- page


class RadiographyPage(pn.viewable.Viewer):
    """Calibrated run, drawn ROIs, their transmission curves under the logs, grid, differences.

    Parameters
    ----------
    state : AppState
        The session's state: choosing a run sets ``state.entry``; choosing an
        image stack on another page makes it this page's run.

    Attributes
    ----------
    rois : dict name -> Rect
        The ROI set shown in the table and drawn on the image.
    series : DataArray (roi, time) or None
        Mean transmission of each valid ROI (what the curves show, before
        Beer-Lambert).
    grid : DataArray (row, col, time) or None
        Grid cell means, when the grid is on.
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.calibrated: Calibrated | None = None
        self.series: xr.DataArray | None = None
        self.grid: xr.DataArray | None = None
        self.logs: dict[str, list[xr.DataArray]] = {}
        self.difference_frame: xr.DataArray | None = None
        self._masters: dict[tuple[str, str], tuple[xr.DataArray, xr.DataArray]] = {}
        self._series_cache: dict[Rect, np.ndarray] = {}
        self._grid_cache: dict[tuple, xr.DataArray] = {}
        self._errors: dict[str, str] = {}
        self._notes: dict[str, str] = {}
        self._tokens: dict[str, int] = {}
        self._choosing = False  # several entry widgets are being set: calibrate once, after
        self._pending: tuple | None = None  # the calibration key being computed

        select = {"width": 190}
        self.run = pn.widgets.Select(label="Run", **select)
        self.dark = pn.widgets.Select(label="Dark", **select)
        self.flat = pn.widgets.Select(label="Flat", **select)
        self.air = pn.widgets.Select(label="Normalise by ROI", options=[NONE], **select)
        self.massspec = pn.widgets.Select(label="Mass spectrometer", **select)
        self.temperature = pn.widgets.Select(label="Temperature", **select)
        self.reference_frames = pn.widgets.IntInput(
            label="Reference image: first frames", value=4, start=1, width=190
        )
        self.alert = pn.pane.Alert(alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.note = pn.pane.Alert(alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("Choose a run.", css_classes=["beamcat-radiography-status"])

        # ROI set: drawn boxes <-> table
        self.roi_editor = RoiEditor(report_error=self._set_error, report_note=self._set_note)
        self.roi_editor.param.watch(self._on_rois, "rois")
        self.table, self.boxes, self.box_stream, self.upload = (
            getattr(self.roi_editor, k) for k in ("table", "boxes", "box_stream", "upload")
        )

        # grid and Beer-Lambert
        self.grid_on = pn.widgets.Checkbox(label="Grid", value=False)
        self.grid_rows = pn.widgets.IntInput(label="Rows", value=4, start=1, end=64, width=90)
        self.grid_cols = pn.widgets.IntInput(label="Cols", value=4, start=1, end=64, width=90)
        self.grid_region = pn.widgets.Select(label="Grid region", options=[WHOLE_IMAGE], width=190)
        self.beer_lambert = pn.widgets.Checkbox(label="Beer–Lambert concentration", value=False)
        self.thickness = pn.widgets.FloatInput(
            label="Thickness (cm)", value=THICKNESS_CM, start=1e-6, width=120
        )
        self.cross_section = pn.widgets.FloatInput(
            label="Cross-section (barn)", value=CROSS_SECTION_BARN, start=1e-9, width=150
        )

        # difference frames
        self.frame = pn.widgets.Player(
            label="Frame", start=0, end=1, value=0, interval=600, loop_policy="once", width=420
        )
        self.diff_reference = pn.widgets.IntInput(
            label="Difference to frame", value=0, start=0, width=150
        )

        # plots: boxes, labels and grid follow their pipes; the image overlay is rebuilt per
        # calibration (a DynamicMap image would keep the first image's axis ranges)
        self._grid_pipe = hv.streams.Pipe(data=None)
        self._grid = hv.DynamicMap(self._grid_element, streams=[self._grid_pipe])
        self.image_pane = pn.pane.HoloViews(
            self._image_overlay(None), css_classes=["beamcat-reference-image"]
        )
        self.curves_pane = pn.pane.HoloViews(
            hv.Curve([]), sizing_mode="stretch_width", css_classes=["beamcat-curves"]
        )
        self.difference_pane = pn.pane.HoloViews(hv.Image([]), css_classes=["beamcat-difference"])

        options = pn.Column(
            self.reference_frames,
            self.air,
            self.grid_on,
            pn.Row(self.grid_rows, self.grid_cols),
            self.grid_region,
            self.beer_lambert,
            pn.Row(self.thickness, self.cross_section),
            width=300,
        )
        self._layout = pn.Column(
            self.alert,
            self.note,
            pn.Row(self.run, self.dark, self.flat, self.massspec, self.temperature),
            pn.Row(self.image_pane, self.roi_editor, options),
            self.curves_pane,
            pn.Row(
                self.difference_pane, pn.Column(self.frame, self.diff_reference), margin=(10, 0)
            ),
            self.status,
            sizing_mode="stretch_width",
        )

        self.run.param.watch(self._on_run, "value")  # first: it picks the run's dark and flat
        for widget in (self.run, self.dark, self.flat, self.air, self.reference_frames):
            widget.param.watch(self._update_calibration, "value")
        for widget in (self.massspec, self.temperature):
            widget.param.watch(self._update_logs, "value")
        for widget in (self.grid_on, self.grid_rows, self.grid_cols, self.grid_region):
            widget.param.watch(self._update_grid, "value")
        for widget in (self.beer_lambert, self.thickness, self.cross_section):
            widget.param.watch(self._render_values, "value")
        for widget in (self.frame, self.diff_reference):
            widget.param.watch(self._update_difference, "value")
        state.param.watch(self._follow_entry, "entry")
        pn.state.onload(self._fill_entries)

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ plumbing

    async def _work(self, what: str, func: Callable[[], Any], busy: pn.viewable.Viewable):
        """Run `func` in a worker thread under a spinner; (True, result) if still wanted.

        A later call for the same `what` supersedes this one (its result is dropped);
        an error is shown in the alert under `what` and cleared by the next success.
        """
        token = self._tokens[what] = self._tokens.get(what, 0) + 1
        busy.loading = True
        try:
            result = await asyncio.to_thread(func)
        except Exception as err:  # shown, never raised: a bad choice must not break the page
            if self._tokens[what] == token:
                self._set_error(what, error_message(err))
            return False, None
        finally:
            if self._tokens[what] == token:
                busy.loading = False
        if self._tokens[what] != token:
            return False, None
        self._set_error(what, None)
        return True, result

    def _set_error(self, what: str, message: str | None) -> None:
        """Show (or clear, with None) the error of one part of the page in the red alert."""
        show_message(self.alert, self._errors, what, message)

    def _set_note(self, what: str, message: str | None) -> None:
        """Show (or clear) a warning that leaves results usable, in the yellow alert."""
        show_message(self.note, self._notes, what, message)

    # ------------------------------------------------------------------ entries

    async def _fill_entries(self) -> None:
        """List image stacks and logs (opening headers, off the event loop) and pick defaults."""
        context = self.state.context
        ok, stacks = await self._work("entries", lambda: image_stacks(context), self._layout)
        if not ok:
            return
        current = self.state.entry if self.state.entry in stacks else None
        defaults = default_entries(context, stacks, run=current)
        self._choosing = True
        try:
            self.dark.options = self.flat.options = stacks
            for key, widget in (("massspec", self.massspec), ("temperature", self.temperature)):
                fmt = LOG_FORMATS[key]
                widget.options = [NONE] + [
                    n for n in context.names if context.rows[n]["format"] == fmt
                ]
                widget.value = defaults[key] or NONE
            self.dark.value, self.flat.value = defaults["dark"], defaults["flat"]
            self.run.options = stacks
            self.run.value = defaults["run"]
        finally:
            self._choosing = False
        await self._update_calibration()

    def _follow_entry(self, event) -> None:
        if event.new in self.run.options and _role(self.state.context, event.new) is None:
            self.run.value = event.new

    def _on_run(self, event) -> None:
        """A new run: the darks, flats and logs that go with it, and the shared selection."""
        if event.new is None:
            return
        context = self.state.context
        defaults = default_entries(context, self.run.options, run=event.new)
        was_choosing, self._choosing = self._choosing, True
        try:
            for key in ("dark", "flat", "massspec", "temperature"):
                widget = getattr(self, key)
                choice = defaults[key]
                current = widget.value if widget.value not in (None, NONE) else None
                # keep a choice the user made unless the new run has a closer candidate
                if choice is not None and (
                    current is None
                    or _affinity(context, choice, event.new)
                    > _affinity(context, current, event.new)
                ):
                    widget.value = choice
        finally:
            self._choosing = was_choosing
        if not self._choosing:  # a user's choice, not the page's default at load
            self.state.entry = event.new

    # ------------------------------------------------------------------ calibration

    def _calibration_key(self) -> tuple:
        air = self.rois.get(self.air.value) if self.air.value != NONE else None
        return (self.run.value, self.dark.value, self.flat.value, air, self.reference_frames.value)

    def compute_calibration(self, key: tuple) -> Calibrated:
        """Masters (cached per dark/flat pair), the lazy transmission and the reference image."""
        run, dark, flat, air, n_ref = key
        context = self.state.context
        if None in (run, dark, flat):
            raise OptionError("choose a run, a dark and a flat entry")
        try:
            if (dark, flat) not in self._masters:
                self._masters[(dark, flat)] = compute_masters(context, dark, flat)
            d, f = self._masters[(dark, flat)]
            transmission = calibrate(_frames(context, run), d, f, air_roi=air)
        except BeamcatError as err:  # name the entries: the message names files or roles
            raise type(err)(f"run {run!r}, dark {dark!r}, flat {flat!r}: {err}") from None
        dim = transmission.dims[0]
        n = max(1, min(int(n_ref or 1), transmission.sizes[dim]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (dead flat) stay NaN
            reference = transmission.isel({dim: slice(0, n)}).mean(dim).compute()
        reference.attrs["preview"] = f"transmission: mean of frames 0-{n - 1}"
        return Calibrated(key, transmission, reference, _frames(context, run), d, f)

    async def _update_calibration(self, *_) -> None:
        key = self._calibration_key()
        if self._choosing or key[0] is None or key == self._pending:
            return
        if self.calibrated is not None and self.calibrated.key == key:
            self._set_error("calibration", None)  # back to what is shown
            return
        self._pending = key
        try:
            ok, calibrated = await self._work(
                "calibration", lambda: self.compute_calibration(key), self.image_pane
            )
        finally:
            if self._pending == key:
                self._pending = None
        if not ok:
            return
        same_run = self.calibrated is not None and self.calibrated.key[:4] == key[:4]
        self.calibrated = calibrated
        if not same_run:  # ROI means depend on the run, dark, flat and air ROI
            self._series_cache, self._grid_cache = {}, {}
        n = calibrated.transmission.sizes[calibrated.dim]
        self.frame.end = max(n - 1, 1)
        self.frame.value = min(self.frame.value, n - 1)
        self.diff_reference.end = n - 1
        self.image_pane.object = self._image_overlay(calibrated.reference)
        self.roi_editor.shape = calibrated.shape
        self.roi_editor.redraw()
        await asyncio.gather(self._update_series(), self._update_grid(), self._update_difference())

    # ------------------------------------------------------------------ ROIs

    @property
    def rois(self) -> dict[str, Rect]:
        """The ROI set of the editor: name -> Rect."""
        return self.roi_editor.rois

    def set_rois(self, rois: Mapping[str, Rect], *, table: bool = True) -> None:
        """Make `rois` the ROI set (see `RoiEditor.set_rois`); the curves and the grid follow."""
        self.roi_editor.set_rois(rois, table=table)

    def load_file(self, path: str | Path, *, label: str | None = None) -> None:
        """Replace the ROI set by the rectangles of a ROI file (`load_rois`); masks are skipped."""
        self.roi_editor.load_file(path, label=label)

    def _on_rois(self, event) -> None:
        names = list(event.new)
        self.air.options = [NONE, *names]
        self.grid_region.options = [WHOLE_IMAGE, *names]
        pn.state.execute(self._rois_changed)

    async def _rois_changed(self) -> None:
        if self._calibration_key() != (self.calibrated.key if self.calibrated else None):
            await self._update_calibration()  # the air ROI moved: everything follows
        else:
            await asyncio.gather(self._update_series(), self._update_grid())

    # ------------------------------------------------------------------ curves

    async def _update_series(self, *_) -> None:
        calibrated, rois = self.calibrated, dict(self.rois)
        if calibrated is None:
            return
        cache = self._series_cache
        ok, result = await self._work(
            "rois",
            lambda: roi_series(calibrated, rois, cache),
            self.curves_pane,
        )
        if not ok:
            return
        self.series, errors = result
        self._set_error("rois", "\n\n".join(errors.values()) or None)
        self._render_curves()

    async def _update_logs(self, *_) -> None:
        context = self.state.context
        chosen = {k: getattr(self, k).value for k in LOG_FORMATS}

        def load():
            return {k: preview_timeseries(context.open(n)) for k, n in chosen.items() if n != NONE}

        ok, logs = await self._work("logs", load, self.curves_pane)
        self.logs = logs if ok else {}
        self._render_curves()

    def _values(self, values: xr.DataArray, dim: str) -> tuple[xr.DataArray, str]:
        """`values` as shown: transmission, or concentration when Beer-Lambert is on."""
        if not self.beer_lambert.value:
            return values, "transmission"
        try:
            out, warning = concentration(
                values,
                dim,
                thickness_cm=self.thickness.value,
                cross_section_barn=self.cross_section.value,
            )
        except BeamcatError as err:
            self._set_error("beer-lambert", error_message(err))
            return values, "transmission"
        self._set_note("beer-lambert", warning)
        return out, "concentration"

    def shown_series(self) -> tuple[xr.DataArray | None, str]:
        """The ROI curves' values as plotted and their quantity name."""
        if self.series is None or self.calibrated is None:
            return None, "transmission"
        return self._values(self.series, self.calibrated.dim)

    def shown_grid(self) -> tuple[xr.DataArray | None, str]:
        """The grid cells' values as shown (row, col, time) and their quantity name."""
        if self.grid is None or self.calibrated is None:
            return None, "transmission"
        return self._values(self.grid, self.calibrated.dim)

    def _render_values(self, *_) -> None:
        self._render_curves()
        self._render_grid()

    def _render_curves(self) -> None:
        plots = []
        log_dims = {
            "massspec": hv.Dimension("pressure", label="partial pressure"),
            "temperature": hv.Dimension("temperature", label="temperature"),
        }
        for key, curves in self.logs.items():
            if not curves:
                continue
            dim = log_dims[key]
            units = curves[0].attrs.get("units", "")
            overlay = hv.Overlay(
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
                title=getattr(self, key).value,
            )
            plots.append(overlay)
        values, quantity = self.shown_series()
        dim = self.calibrated.dim if self.calibrated else "time"
        if values is not None:
            vdim = hv.Dimension(quantity, unit=values.attrs.get("units"))
            x = values[dim].values
            curves = [
                hv.Curve((x, values.sel(roi=n).values), dim, vdim, label=str(n)).opts(
                    color=self.roi_editor.color(n)
                )
                for n in values["roi"].values
            ]
            plots.append(
                hv.Overlay(curves).opts(
                    height=280,
                    responsive=True,
                    legend_position="right",
                    title=f"ROI {quantity}",
                )
            )
        grid, grid_quantity = self.shown_grid()
        if grid is not None:
            cells = grid.stack(cell=("row", "col")).transpose("cell", dim)
            x = grid[dim].values
            xe = np.append(x, x[-1] + (x[-1] - x[-2] if x.size > 1 else 1))
            plots.append(
                hv.QuadMesh(
                    (xe, np.arange(cells.sizes["cell"] + 1), cells.values),
                    [dim, "cell"],
                    hv.Dimension(grid_quantity),
                ).opts(
                    cmap="viridis",
                    colorbar=True,
                    height=220,
                    responsive=True,
                    title="grid cells (row-major) over time",
                    tools=["hover"],
                )
            )
        if not plots:
            self.curves_pane.object = hv.Curve([]).opts(title="Draw a ROI on the image")
        else:
            self.curves_pane.object = hv.Layout(plots).cols(1).opts(shared_axes=True)
        shown = ", ".join(map(str, values["roi"].values)) if values is not None else "none"
        frames = self.calibrated.transmission.sizes[dim] if self.calibrated is not None else 0
        self.status.object = (
            f"{self.run.value or 'no run'}: {frames} frames · curves ({quantity}): {shown}"
        )

    # ------------------------------------------------------------------ grid

    def compute_grid(self, calibrated: Calibrated, rows: int, cols: int, region) -> xr.DataArray:
        """Grid cell means (row, col, time), cached per grid."""
        key = (calibrated.key[:4], rows, cols, region)
        if key not in self._grid_cache:
            grid = calibrated.means(grid=(rows, cols), grid_region=region)["grid"]
            self._grid_cache[key] = grid["mean"].compute()
        return self._grid_cache[key]

    async def _update_grid(self, *_) -> None:
        calibrated = self.calibrated
        if not self.grid_on.value or calibrated is None:
            self.grid = None
            self._set_error("grid", None)
            self._render_grid()
            self._render_curves()
            return
        rows, cols = self.grid_rows.value, self.grid_cols.value
        region = self.rois.get(self.grid_region.value)
        ok, grid = await self._work(
            "grid", lambda: self.compute_grid(calibrated, rows, cols, region), self.image_pane
        )
        self.grid = grid if ok else None
        self._render_grid()
        self._render_curves()

    def _render_grid(self) -> None:
        grid, _ = self.shown_grid()
        if grid is None:
            self._grid_pipe.send(None)
            return
        frame = grid.isel({self.calibrated.dim: min(self.frame.value, grid.shape[-1] - 1)})
        self._grid_pipe.send(frame)

    # ------------------------------------------------------------------ differences

    def compute_difference(self, calibrated: Calibrated, index: int, reference: int):
        """The display image of `difference` at frame `index` (computes that frame only)."""
        shown = difference(calibrated.transmission, reference=reference)["display"]
        return shown.isel({calibrated.dim: index}).compute()

    async def _update_difference(self, *_) -> None:
        calibrated = self.calibrated
        self._render_grid()
        if calibrated is None:
            return
        index, reference = self.frame.value, self.diff_reference.value
        ok, frame = await self._work(
            "difference",
            lambda: self.compute_difference(calibrated, index, reference),
            self.difference_pane,
        )
        if not ok:
            return
        self.difference_frame = frame
        when = ""
        if "time" in frame.coords:
            when = f" at {pd.Timestamp(frame['time'].values):%Y-%m-%d %H:%M:%S} UTC"
        self.difference_pane.object = _image(frame, clim=(0.0, 1.0)).opts(
            title=f"Difference frame {index} − frame {reference}{when} (stretched 2–95 %)",
            colorbar=True,
        )

    # ------------------------------------------------------------------ elements

    def _image_overlay(self, reference: xr.DataArray | None) -> hv.Overlay:
        """The reference image with the grid, the ROI boxes (box-edit tool) and their names."""
        if reference is None:
            image = _image(xr.DataArray(np.zeros((64, 64))), clim=(0.0, 1.0))
        else:
            image = _image(reference, clim=robust_limits(reference.values))
        title = reference.attrs["preview"] if reference is not None else "Reference image"
        return (image * self._grid * self.boxes * self.roi_editor.labels).opts(
            active_tools=["box_edit", "wheel_zoom"], title=title
        )

    def _grid_element(self, data: xr.DataArray | None):
        if data is None:  # invisible placeholder: the overlay keeps its layers
            ny, nx = self.calibrated.shape if self.calibrated else (1, 1)
            return hv.QuadMesh(([0, nx], [0, ny], np.zeros((1, 1))), ["x", "y"]).opts(alpha=0)
        xe = _edges(data["roi_x"].values, data["roi_w"].values)
        ye = _edges(data["roi_y"].values, data["roi_h"].values)
        return hv.QuadMesh((xe, ye, data.values), ["x", "y"], "cell").opts(
            cmap="viridis", alpha=0.55, tools=["hover"]
        )


def _image(data: xr.DataArray, *, clim: tuple[float, float], height: int = 384) -> hv.Image:
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


def _positive(curves: list[xr.DataArray]) -> bool:
    values = np.concatenate([np.asarray(c.values, dtype=float) for c in curves])
    values = values[np.isfinite(values)]
    return bool(values.size) and bool((values > 0).all())
