"""The radiography page: calibrate a run, draw ROIs, follow their transmission beside the logs.

Pick a run and its dark and flat entries: the page offers the runs it can
calibrate, those with a dark and a flat of their own
(`beamcat.workflows.calibration_entries`, which the CLI uses too), and picks
their dark, flat and logs. It shows the calibrated reference image, on which
ROIs are drawn, moved and deleted with the mouse (bokeh's box-edit tool: shift
+ drag draws a box, drag moves one, tap then Backspace deletes it) and resized
by their edges or by editing their numbers in the table beside it. Below the
logs (mass spectrometer, temperature) the ROIs' transmission curves follow
every change, on a shared time axis. A grid of cells, Beer-Lambert
concentrations and difference frames (a player over time) are one toggle away;
ROI sets are saved and loaded as JSON (or CSV).

Work is split as in the catalog page: everything that reads pixels runs in a
worker thread (`beamcat.apps.radiography_data`, a spinner shows) and returns
NumPy-backed results; HoloViews elements are built on the event loop
(`beamcat.apps.radiography_plots`). Only bounded results are computed: the
masters (once per dark/flat choice), the reference image, ROI and grid means
over time (cached per ROI rectangle) and one difference frame at a time. A bad
choice shows an alert and leaves the rest of the page working.

Examples
--------
>>> from beamcat.apps import radiography_page
>>> page = radiography_page.page()  # the demo catalog; shown inline in a notebook  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.apps._banners import Banners, error_message
from beamcat.apps._plots import plot_pane
from beamcat.apps.quicklook import preview_timeseries
from beamcat.apps.radiography_data import (
    Calibrated,
    calibrate_run,
    concentration,
    difference_frame,
    grid_series,
    roi_series,
)
from beamcat.apps.radiography_plots import (
    difference_element,
    grid_cells_element,
    grid_element,
    log_overlay,
    reference_overlay,
    roi_overlay,
)
from beamcat.apps.roi_editor import RoiEditor
from beamcat.apps.state import AppState, app_state
from beamcat.errors import BeamcatError
from beamcat.rois import Rect
from beamcat.workflows.calibration_entries import (
    LOG_FORMATS,
    affinity,
    calibratable_runs,
    default_entries,
    image_stacks,
)

NONE = "(none)"
WHOLE_IMAGE = "whole image"
#: the original scripts' example: 1.3 cm bed, H2 (two H atoms of 82.574 b)
THICKNESS_CM = 1.3
CROSS_SECTION_BARN = 2 * 82.574


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
        self.banners = Banners()
        self._set_error, self._set_note = self.banners.set_error, self.banners.set_note
        self.entries: dict = {}  # name -> EntryInfo, filled on load
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
        self.alert, self.note = self.banners.alert, self.banners.note
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
        self._grid = hv.DynamicMap(
            lambda data: grid_element(data, self.calibrated.shape if self.calibrated else (1, 1)),
            streams=[self._grid_pipe],
        )
        self.image_pane = plot_pane(
            self._image_overlay(None), css_classes=["beamcat-reference-image"]
        )
        self.curves_pane = plot_pane(
            hv.Curve([]), sizing_mode="stretch_width", css_classes=["beamcat-curves"]
        )
        self.difference_pane = plot_pane(hv.Image([]), css_classes=["beamcat-difference"])

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
        """Run `func` in a worker thread under a spinner: ``(True, result)`` if still wanted.

        A later call for the same `what` supersedes this one: ``(None, None)``, and the
        caller leaves the page as it is (the later call's result, which may have come
        first, must not be wiped). An error gives ``(False, None)``; it is shown in the
        alert under `what` and cleared by the next success.
        """
        token = self._tokens[what] = self._tokens.get(what, 0) + 1
        busy.loading = True
        try:
            result = await asyncio.to_thread(func)
        except Exception as err:  # shown, never raised: a bad choice must not break the page
            if self._tokens[what] != token:
                return None, None
            self._set_error(what, error_message(err))
            return False, None
        finally:
            if self._tokens[what] == token:
                busy.loading = False
        if self._tokens[what] != token:
            return None, None
        self._set_error(what, None)
        return True, result

    # ------------------------------------------------------------------ entries

    async def _fill_entries(self) -> None:
        """List the runs it can calibrate, stacks and logs (opening headers, off the event loop).

        Runs are the calibratable ones only (`calibratable_runs`); darks and
        flats may be any image stack, so a user can override the guess.
        """
        context = self.state.context
        ok, entries = await self._work("entries", context.entry_infos, self._layout)
        if not ok:
            return
        self.entries, stacks, runs = entries, image_stacks(entries), calibratable_runs(entries)
        current = self.state.entry if self.state.entry in runs else None
        defaults = default_entries(entries, run=current)
        self._choosing = True
        try:
            self.dark.options = self.flat.options = stacks
            for key, widget in (("massspec", self.massspec), ("temperature", self.temperature)):
                fmt = LOG_FORMATS[key]
                widget.options = [NONE] + [n for n, e in entries.items() if e.format == fmt]
                widget.value = defaults[key] or NONE
            self.dark.value, self.flat.value = defaults["dark"], defaults["flat"]
            self.run.options = runs
            self.run.value = defaults["run"] if defaults["run"] in runs else None
        finally:
            self._choosing = False
        if not runs:
            self.status.object = (
                "No run to calibrate in this catalog: a run needs a dark and a flat entry "
                "(named or described so) of its own run or name prefix, with frames of its shape."
            )
        await self._update_calibration()

    def _follow_entry(self, event) -> None:
        """Another page selected an entry: make it the run if it is one this page can calibrate."""
        if event.new in self.run.options:
            self.run.value = event.new

    def _on_run(self, event) -> None:
        """A new run: the darks, flats and logs that go with it, and the shared selection."""
        if event.new is None:
            return
        entries = self.entries
        defaults = default_entries(entries, run=event.new)
        was_choosing, self._choosing = self._choosing, True
        try:
            for key in ("dark", "flat", "massspec", "temperature"):
                widget = getattr(self, key)
                choice = defaults[key]
                current = widget.value if widget.value not in (None, NONE) else None
                # keep a choice the user made unless the new run has a closer candidate
                if choice is not None and (
                    current is None
                    or affinity(entries, choice, event.new) > affinity(entries, current, event.new)
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
        return calibrate_run(self.state.context, key, self._masters)

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
        if ok is None:
            return  # superseded by a later choice
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
        plots = [
            log_overlay(curves, key, getattr(self, key).value)
            for key, curves in self.logs.items()
            if curves
        ]
        values, quantity = self.shown_series()
        dim = self.calibrated.dim if self.calibrated else "time"
        if values is not None:
            colors = {n: self.roi_editor.color(n) for n in values["roi"].values}
            plots.append(roi_overlay(values, dim, quantity, colors))
        grid, grid_quantity = self.shown_grid()
        if grid is not None:
            plots.append(grid_cells_element(grid, dim, grid_quantity))
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
            "grid",
            lambda: grid_series(calibrated, rows, cols, region, self._grid_cache),
            self.image_pane,
        )
        if ok is None:
            return  # superseded by a later grid
        self.grid = grid if ok else None
        self._render_grid()
        self._render_curves()

    def _render_grid(self) -> None:
        grid, _ = self.shown_grid()
        frame = None
        if grid is not None:
            frame = grid.isel({self.calibrated.dim: min(self.frame.value, grid.shape[-1] - 1)})
        if frame is None and self._grid_pipe.data is None:
            return  # nothing to redraw: a needless redraw of the image could race a drag on it
        self._grid_pipe.send(frame)

    # ------------------------------------------------------------------ differences

    async def _update_difference(self, *_) -> None:
        calibrated = self.calibrated
        self._render_grid()
        if calibrated is None:
            return
        index, reference = self.frame.value, self.diff_reference.value
        ok, frame = await self._work(
            "difference",
            lambda: difference_frame(calibrated, index, reference),
            self.difference_pane,
        )
        if not ok:
            return
        self.difference_frame = frame
        self.difference_pane.object = difference_element(frame, index, reference)

    def _image_overlay(self, reference: xr.DataArray | None) -> hv.Overlay:
        """The reference image with the grid, the ROI boxes (box-edit tool) and their names."""
        return reference_overlay(reference, self._grid, self.boxes, self.roi_editor.labels)


def page(catalog=None, **options) -> RadiographyPage:
    """The radiography page, inline in a notebook or served; `catalog`: see `app_state`."""
    return RadiographyPage(app_state(catalog, **options))
