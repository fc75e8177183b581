"""The SPICE page: line-fit maps of a spectral window, one pixel's spectrum and its fit.

Pick an entry whose signal has a ``wavelength`` dim (Solar Orbiter SPICE L2,
Hinode EIS) and one of its file's windows. The window is prepared (SAFFRON's
preclean, the noise model, despike: `beamcat.analyses.spectral_prep.prepare`)
and every pixel fitted with the catalog lines inside it
(`beamcat.analyses.linefit.fit_lines`) in a worker thread, with a progress bar;
fits are cached per (entry, window, options), so going back costs nothing.
The maps show, for the chosen line, its peak intensity, Doppler velocity and
width, and per pixel the reduced χ² and the fit's status (one colour per
`FitStatus`, named on the colour bar).

A click on any map reads ONE spectrum and fits it with the maps' model
(`fit_block`: the numbers the maps hold there): the spectrum with its σ error
bars, the model, each line and the background, the residuals and a table of
parameters with their errors. The options row (background, a lock of one
line's centre to another's, bounds per parameter kind) applies to that pixel
at once with "Refit pixel" (the maps' fit drawn grey beside it), or to the
whole window with "Fit window".

Examples
--------
>>> from beamcat.apps import spice_page
>>> page = spice_page.page()  # the demo catalog, inline in a notebook  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.apps._banners import Banners
from beamcat.apps._jobs import Jobs
from beamcat.apps._plots import plot_pane
from beamcat.apps.spice_data import (
    MAP_DIMS,
    FitOptions,
    FitStatus,
    PixelFit,
    default_bounds,
    entry_window,
    fit_pixel,
    fit_window,
    prepared,
    spectral_entries,
    spectrum_at,
    window_choices,
    window_lines,
    window_model,
)
from beamcat.apps.spice_plots import (
    MAP_KINDS,
    map_element,
    marker_element,
    parameter_table,
    spectrum_elements,
)
from beamcat.apps.state import AppState, app_state
from beamcat.apps.stem4d_plots import scan_position

#: the bound widgets: kind -> label (centre bounds are offsets from the rest wavelength)
BOUND_KINDS = {"intensity": "Intensity", "center": "Centre − rest (Å)", "width": "Width σ (Å)"}
#: how often the progress bar follows a running fit (s)
PROGRESS_POLL_S = 0.2


class SpicePage(pn.viewable.Viewer):
    """Line-fit maps of a window, a pixel's spectrum with its fit, refits with changed options.

    Parameters
    ----------
    state : AppState
        The session's state: choosing an entry sets ``state.entry``; a spectral
        entry chosen on another page becomes this page's.

    Attributes
    ----------
    data : Dataset or None
        The prepared window (lazy): signal, ``sigma``, ``spikes``.
    result : Dataset or None
        The maps' fit (`fit_window`), computed.
    options : FitOptions or None
        The options of `result`; ``model`` its `LineModel`.
    position : (i, j) or None
        The pixel shown.
    map_fit : PixelFit or None
        That pixel fitted with the maps' model.
    pixel_fit : PixelFit or None
        The fit drawn: `map_fit`, or the refit with the options row.
    taps : dict kind -> holoviews.streams.Tap
        A click on each map.
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.data: xr.Dataset | None = None
        self.result: xr.Dataset | None = None
        self.options: FitOptions | None = None
        self.model = None
        self.position: tuple[int, int] | None = None
        self.map_fit: PixelFit | None = None
        self.pixel_fit: PixelFit | None = None
        self.taps: dict[str, hv.streams.Tap] = {}
        self._fraction = 0.0
        self._fresh_maps = True
        self._map_pipes: dict[str, hv.streams.Pipe] = {}
        self.banners = Banners()
        self.jobs = Jobs(self.banners.set_error)
        self._choosing = False  # the page sets its widgets itself: no updates

        self.entry = pn.widgets.Select(label="Entry", width=200)
        self.window = pn.widgets.Select(label="Window", width=200)
        self.line = pn.widgets.Select(label="Line (maps)", width=150)
        self.background = pn.widgets.RadioButtonGroup(
            options=["constant", "linear"], value="constant"
        )
        self.lock = pn.widgets.Checkbox(
            label="Lock a line's centre to another's",
            value=False,
            css_classes=["beamcat-spice-lock"],
        )
        self.lock_b = pn.widgets.Select(label="Centre of", width=120)
        self.lock_a = pn.widgets.Select(label="= centre of", width=120)
        self.lock_offset = pn.widgets.FloatInput(
            label="+ offset (Å; empty: rest)", value=None, width=170
        )
        self.bounds = {
            kind: (
                pn.widgets.FloatInput(label=f"{label} from", value=None, width=130),
                pn.widgets.FloatInput(label="to", value=None, width=100),
            )
            for kind, label in BOUND_KINDS.items()
        }
        self.refit_button = pn.widgets.Button(label="Refit pixel", color="primary", width=110)
        self.fit_button = pn.widgets.Button(label="Fit window", width=110)
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False)
        self.status = pn.pane.Markdown("Choose an entry.", css_classes=["beamcat-spice-status"])
        self.table = pn.pane.Markdown("", css_classes=["beamcat-spice-table"])

        self.maps_pane = plot_pane(hv.Image([]), css_classes=["beamcat-spice-maps"])
        self.spectrum_pane = plot_pane(
            hv.Curve([]), sizing_mode="stretch_width", css_classes=["beamcat-spice-spectrum"]
        )
        self.residual_pane = plot_pane(hv.Curve([]), sizing_mode="stretch_width")
        bounds = [pn.Row(*pair) for pair in self.bounds.values()]
        self._layout = pn.Column(
            self.banners.alert,
            pn.Row(self.entry, self.window, self.line, self.progress, align="end"),
            self.status,
            self.maps_pane,
            pn.Row(
                pn.Column(
                    "**Model of the pixel**",
                    self.background,
                    self.lock,
                    pn.Row(self.lock_b, self.lock_a, self.lock_offset),
                    *bounds,
                    pn.Row(self.refit_button, self.fit_button),
                    width=520,
                ),
                pn.Column(
                    self.spectrum_pane,
                    self.residual_pane,
                    self.table,
                    sizing_mode="stretch_width",
                ),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

        self.entry.param.watch(self._on_entry, "value")
        self.window.param.watch(self._on_window, "value")
        self.line.param.watch(lambda *_: self._draw_maps(), "value")
        self.refit_button.on_click(lambda *_: pn.state.execute(self.refit))
        self.fit_button.on_click(lambda *_: pn.state.execute(self.fit))
        state.param.watch(self._follow_entry, "entry")
        pn.state.onload(self._fill_entries)

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ choices

    async def _fill_entries(self) -> None:
        """Offer the spectral entries; the selected entry if it is one, else the first."""
        infos = await self.jobs.entry_infos(self.state.context, self._layout)
        if infos is None:
            return
        names = spectral_entries(infos)
        with self._setting():
            self.entry.options = names
            if names:
                self.entry.value = self.state.entry if self.state.entry in names else names[0]
        if not names:
            self.status.object = "No spectral entry (a signal with a wavelength dim) here."
            return
        await self.load()

    @contextlib.contextmanager
    def _setting(self):
        """The page sets its own widgets: their watchers do nothing meanwhile."""
        self._choosing = True
        try:
            yield
        finally:
            self._choosing = False

    def _follow_entry(self, event) -> None:
        if event.new in self.entry.options:
            self.entry.value = event.new

    def _on_entry(self, event) -> None:
        if event.new is not None and not self._choosing:
            self.state.entry = event.new
            pn.state.execute(self.load)

    def _on_window(self, event) -> None:
        if event.new is not None and not self._choosing:
            pn.state.execute(self.load_window)

    def _on_click(self, x, y) -> None:
        """A click on a map: fit and show that pixel."""
        if self.result is None:
            return
        position = scan_position(x, y, tuple(self.data.sizes[d] for d in MAP_DIMS))
        if position is not None:
            pn.state.execute(functools.partial(self.select, *position))

    def current_options(self) -> FitOptions:
        """The options row as `FitOptions` (empty bounds: unbounded on that side)."""
        locks = ()
        if self.lock.value:
            locks = ((self.lock_b.value, self.lock_a.value, self.lock_offset.value),)
        bounds = tuple(
            (
                kind,
                (
                    -math.inf if lo.value is None else lo.value,
                    math.inf if hi.value is None else hi.value,
                ),
            )
            for kind, (lo, hi) in self.bounds.items()
        )
        return FitOptions(background=self.background.value, locks=locks, bounds=bounds)

    def _set_model_widgets(self, lines: list[str], fmt: str | None) -> None:
        """Lines of the window in the line and lock selects; the format's bounds."""
        with self._setting():
            self.line.options = lines
            self.line.value = lines[0]
            self.lock_b.options = self.lock_a.options = lines
            self.lock_b.value = lines[-1]
            self.lock_a.value = lines[0]
            self.lock.value = False
            self.lock_offset.value = None
            for kind, (lo, hi) in self.bounds.items():
                low, high = default_bounds(fmt)[kind]
                lo.value = None if math.isinf(low) else float(low)
                hi.value = None if math.isinf(high) else float(high)

    # ------------------------------------------------------------------ work

    async def load(self) -> None:
        """The chosen entry's windows; its own window selected and loaded."""
        name, context = self.entry.value, self.state.context

        def windows():
            return window_choices(context, name), entry_window(context, name)

        ok, result = await self.jobs.run("entry", windows, self._layout)
        if ok is None:
            return
        if not ok:
            self._clear("No window: see the message above.")
            return
        choices, own = result
        with self._setting():
            self.window.options = choices
            self.window.value = own
        await self.load_window()

    async def load_window(self) -> None:
        """Prepare the chosen window (lazily), set the model widgets, fit the maps."""
        name, window, context = self.entry.value, self.window.value, self.state.context

        def opened():
            data = prepared(context, name, window)
            return data, list(window_lines(data))

        ok, result = await self.jobs.run("window", opened, self._layout)
        if ok is None:
            return
        if not ok:
            self._clear("No window: see the message above.")
            return
        self._clear("")
        self.data, lines = result
        self._set_model_widgets(lines, self.data.attrs.get("format"))
        self._fresh_maps = True  # the window's first maps make new plots
        await self.fit()

    def _clear(self, message: str) -> None:
        self.data = self.result = self.options = self.model = None
        self.position = self.map_fit = self.pixel_fit = None
        if message:
            self.status.object = message

    async def fit(self) -> None:
        """Fit every pixel of the window with the options row (cached), then the maps."""
        data = self.data
        if data is None:
            return
        name, window, context = self.entry.value, self.window.value, self.state.context
        options = self.current_options()

        def fitted():
            model = window_model(data, options)  # bad options fail here, with their message
            return model, fit_window(context, name, window, options, self._report)

        self._fraction, self.progress.value, self.progress.visible = 0.0, 0, True
        done = asyncio.Event()
        watcher = asyncio.ensure_future(self._follow_progress(done))
        try:
            ok, result = await self.jobs.run("fit", fitted, self.maps_pane)
        finally:
            done.set()
            await watcher
        if ok is None:
            return
        self.progress.visible = False
        if not ok:
            return
        self.model, self.result = result
        self.options = options
        self._draw_maps()
        i, j = self.position or tuple(data.sizes[d] // 2 for d in MAP_DIMS)
        await self.select(i, j)

    def _report(self, fraction: float) -> None:
        """Progress of the running fit (called from dask's threads)."""
        self._fraction = fraction

    async def _follow_progress(self, done: asyncio.Event) -> None:
        """Move the progress bar with the running fit until `done`."""
        while not done.is_set():
            self.progress.value = int(100 * self._fraction)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), PROGRESS_POLL_S)
        self.progress.value = 100

    async def select(self, i: int, j: int) -> None:
        """Read pixel (i, j)'s spectrum (one spectrum) and fit it with the maps' model."""
        data, model = self.data, self.model
        if data is None or model is None:
            return

        def read():
            return fit_pixel(spectrum_at(data, i, j), model)

        ok, result = await self.jobs.run("pixel", read, self.spectrum_pane)
        if not ok:
            return
        self.position, self.map_fit, self.pixel_fit = (i, j), result, result
        self._marker_pipe.send(self.position)
        self._draw_pixel()

    async def refit(self) -> None:
        """Refit the shown pixel with the options row (`fit_block` on its spectrum)."""
        if self.map_fit is None:
            return
        spectrum, data, options = self.map_fit.spectrum, self.data, self.current_options()

        def refitted():
            return fit_pixel(spectrum, window_model(data, options))

        ok, result = await self.jobs.run("pixel", refitted, self.spectrum_pane)
        if not ok:
            return
        self.pixel_fit = result
        self._draw_pixel()

    # ------------------------------------------------------------------ drawing

    def _new_maps(self, shown: dict) -> None:
        """Fresh map images and click streams, starting with `shown` (kind -> (values, title)).

        A DynamicMap keeps the axis ranges of its first image: each window gets its own.
        """
        self._map_pipes = {kind: hv.streams.Pipe(data=shown[kind]) for kind in MAP_KINDS}
        self._marker_pipe = hv.streams.Pipe(data=None)
        marker = hv.DynamicMap(lambda data: marker_element(data), streams=[self._marker_pipe])
        maps = []
        for kind, pipe in self._map_pipes.items():
            image = hv.DynamicMap(functools.partial(_map, kind), streams=[pipe])
            self.taps[kind] = hv.streams.Tap(source=image, x=None, y=None)
            self.taps[kind].add_subscriber(self._on_click)
            maps.append((image * marker).opts(active_tools=["tap"]))
        self.maps_pane.object = hv.Layout(maps).cols(3)  # the line's maps, then chi2 and status
        self._fresh_maps = False

    def _draw_maps(self) -> None:
        """The maps of the chosen line, the χ² and status maps, the status line."""
        result, line = self.result, self.line.value
        if result is None or line not in result["line"].values:
            return
        shown = {}
        for kind in MAP_KINDS:
            per_line = "line" in result[kind].dims
            var = result[kind].sel(line=line) if per_line else result[kind]
            shown[kind] = (
                _image(var),
                f"{MAP_KINDS[kind][0]} {line}" if per_line else MAP_KINDS[kind][0],
            )
        if self._fresh_maps:
            self._new_maps(shown)
        else:
            for kind, pipe in self._map_pipes.items():
                pipe.send(shown[kind])
        self._status()

    def _draw_pixel(self) -> None:
        fit, (i, j) = self.pixel_fit, self.position
        refit = fit is not self.map_fit
        title = f"{'Refit' if refit else 'Spectrum'} at y={i}, x={j}"
        spectrum, residuals = spectrum_elements(fit, title, self.map_fit if refit else None)
        self.spectrum_pane.object, self.residual_pane.object = spectrum, residuals
        options = self.current_options() if refit else self.options
        self.table.object = (
            f"**{title}**: {fit.status.name}, reduced χ² {fit.reduced_chi2:.3g}"
            f"{_described(options)}\n\n{parameter_table(fit)}"
        )
        self._status()

    def _status(self) -> None:
        if self.result is None or self.data is None:
            return
        ny, nx = (self.data.sizes[d] for d in MAP_DIMS)
        counts = np.bincount(_image(self.result["status"]).astype(int).ravel(), minlength=6)
        summary = ", ".join(f"{counts[s]} {s.name.lower()}" for s in FitStatus if counts[s])
        parts = [
            f"**{self.entry.value}** window {self.data.attrs.get('window', self.window.value)!r}: "
            f"{ny} x {nx} pixels, lines {', '.join(self.model.lines)}",
            f"fit: {summary}",
        ]
        if self.position is not None and self.map_fit is not None:
            i, j = self.position
            parts.append(f"pixel y={i}, x={j}: {self.map_fit.status.name}")
        self.status.object = " · ".join(parts)


def _map(kind: str, data) -> hv.Image:
    values, title = data
    return map_element(values, kind, title)


def _image(var: xr.DataArray) -> np.ndarray:
    """A map (y, x) of a result variable, other spatial dims (``time``) at index 0."""
    extra = {d: 0 for d in var.dims if d not in MAP_DIMS}
    return var.isel(extra).transpose(*MAP_DIMS).values


def _described(options: FitOptions | None) -> str:
    """The options' lock and background in words (``""`` for the defaults)."""
    if options is None:
        return ""
    words = [] if options.background == "constant" else [f"{options.background} background"]
    for b, a, offset in options.locks:
        words.append(f"{b} locked to {a}" + ("" if offset is None else f" + {offset:g} Å"))
    return f" ({'; '.join(words)})" if words else ""


def page(catalog=None, **options) -> SpicePage:
    """The SPICE page, inline in a notebook or served; `catalog`: see `app_state`."""
    return SpicePage(app_state(catalog, **options))
