"""The live page: replay a recorded stream into the live pipeline and watch it build up.

Choose a recording (a catalog entry of format cbor-stream, or the path of its
stream files) and a processing mode (`beamcat.live.pipeline.MODES`), then
"Replay": a background thread plays the recording (at the recorded pace or as
fast as it can be read, `beamcat.catalog.cbor_stream.replay`) through a
`LivePipeline`, and a periodic callback (every `REFRESH_MS`) shows its
snapshot: the accumulated image with its frame count, the means of ROIs drawn
on it against the motor position (error bars: the spread of the frames within
a step) and, in photon mode, the clean image and the energy histogram with its
cuts marked.

Accumulation is started, stopped and reset with its buttons; like the original
reducer, the accumulated image carries over from one replay to the next (a new
replay starts a new step table), unless the mode or its options changed.

Detector images are larger than a screen: the display takes blocks of
``factor x factor`` pixels, by their maximum when "Max filter" is on (a single
hot pixel or photon stays visible) or by their mean (`beamcat.apps.live_display`).
"Zoom" shows one ROI's region instead of the whole image. Recordings are catalog
entries or paths, replayed in a thread (`beamcat.apps.live_sources`); the ROI means
per step and the energy histogram are the `beamcat.figures` HoloViews twins.

The geometry panel (`beamcat.apps.live_geometry`) takes the detector distance,
beam centre, pixel size and energy (the stream header's by default), or a PONI
file: q-curves of a calibrant (LaB6 by default) or of typed q values are drawn
on the accumulated image, and its azimuthal integration (in q, detector gaps
left out) follows the frames as they arrive.

Only the replay thread touches frames; the callback reads the pipeline's
thread-safe snapshot and draws on the event loop. A bad choice (no such entry,
unreadable recording, ROI outside the frame, contradictory thresholds) shows
an alert and leaves the page working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.apps._banners import Banners, error_message
from beamcat.apps._plots import plot_pane
from beamcat.apps.live_display import display_image, image_element
from beamcat.apps.live_geometry import GeometryPanel
from beamcat.apps.live_sources import Replay, entry_poni, entry_recording, stream_entries
from beamcat.apps.roi_editor import RoiEditor
from beamcat.apps.state import AppState, app_state
from beamcat.errors import OptionError
from beamcat.figures.energy_histogram import energy_histogram_hv
from beamcat.figures.step_means import step_means_hv
from beamcat.live.pipeline import MODES, LivePipeline

PATH_CHOICE = "(path below)"
WHOLE_IMAGE = "whole image"
REFRESH_MS = 300
# --------------------------------------------------------------------------- page


class LivePage(pn.viewable.Viewer):
    """Replay a recorded stream into a `LivePipeline` and show it building up.

    Parameters
    ----------
    state : AppState
        The session's state: selecting a cbor-stream entry on another page
        makes it this page's recording.

    Attributes
    ----------
    pipeline : LivePipeline or None
        The pipeline of the last replay.
    replay : Replay or None
        The last replay.
    view : dict or None
        The pipeline's snapshot the page shows (`LivePipeline.snapshot`).
    shown : DataArray (y, x) or None
        The displayed (block-reduced) image.
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.pipeline: LivePipeline | None = None
        self.replay: Replay | None = None
        self.view: dict | None = None
        self.shown: xr.DataArray | None = None
        self.shape: tuple[int, int] | None = None
        self._options: dict | None = None  # what `pipeline` was made with
        self.banners = Banners()
        self._set_error, self._set_note = self.banners.set_error, self.banners.set_note
        self._callback = None
        self._geometry: tuple | None = None  # of the image overlay in `image_pane`
        self._image_pipe: hv.streams.Pipe | None = None  # feeds that overlay's image
        self._drawn: tuple | None = None  # (pipeline, frames, count, running) drawn last

        self.source = pn.widgets.Select(label="Recording", width=220)
        self.path = pn.widgets.TextInput(
            label="Path (stream files, folder or glob)",
            placeholder="/data/scan_*.cbors*",
            width=320,
        )
        self.mode = pn.widgets.Select(label="Mode", options=list(MODES), value="image", width=110)
        self.realtime = pn.widgets.Checkbox(label="At the recorded rate", value=True)
        self.speed = pn.widgets.FloatInput(label="Speed", value=1.0, start=0.01, width=80)
        self.replay_button = pn.widgets.Button(label="Replay", color="primary", width=90)
        self.stop_button = pn.widgets.Button(label="Stop replay", width=100, disabled=True)
        self.mask_negative = pn.widgets.Checkbox(label="Negative pixels (gaps) as 0", value=True)
        self.background = pn.widgets.FloatInput(label="Background (ADU)", value=100.0, width=120)
        self.threshold = pn.widgets.FloatInput(label="Threshold (ADU)", value=None, width=120)
        self.energy_min = pn.widgets.FloatInput(label="Energy min (ADU)", value=1100.0, width=120)
        self.energy_max = pn.widgets.FloatInput(label="Energy max (ADU)", value=None, width=120)
        self.start_button = pn.widgets.Button(label="Start", width=70)
        self.pause_button = pn.widgets.Button(label="Stop", width=70)
        self.reset_button = pn.widgets.Button(label="Reset", width=70)
        self.max_filter = pn.widgets.Checkbox(label="Max filter (keep hot pixels)", value=True)
        self.zoom = pn.widgets.Select(label="Zoom", options=[WHOLE_IMAGE], width=150)
        self.alert, self.note = self.banners.alert, self.banners.note
        self.count = pn.pane.Markdown("No frame yet.", css_classes=["beamcat-live-count"])

        self.roi_editor = RoiEditor(report_error=self._set_error, report_note=self._set_note)
        self.roi_editor.param.watch(self._on_rois, "rois")
        self.geometry = GeometryPanel(report_error=self._set_error)
        self.image_pane = plot_pane(css_classes=["beamcat-live-image"])
        self.steps_pane = plot_pane(
            _empty("ROI means: draw a ROI, then replay"), css_classes=["beamcat-live-steps"]
        )
        self.clean_pane = plot_pane(_empty("Clean image"), visible=False)
        self.histogram_pane = plot_pane(_empty("Energy histogram"), visible=False)
        self._photon_options = pn.Row(
            self.background, self.threshold, self.energy_min, self.energy_max, visible=False
        )

        self.replay_button.on_click(self._on_replay)
        self.stop_button.on_click(lambda *_: self.stop_replay())
        self.start_button.on_click(lambda *_: self._accumulation("start"))
        self.pause_button.on_click(lambda *_: self._accumulation("stop"))
        self.reset_button.on_click(lambda *_: self._accumulation("reset"))
        self.source.param.watch(self._on_source, "value")
        self.mode.param.watch(self._on_mode, "value")
        for widget in (self.max_filter, self.zoom):
            widget.param.watch(lambda *_: self.refresh(force=True), "value")
        state.param.watch(self._follow_entry, "entry")
        if pn.state.curdoc is not None:  # a served session: its replay ends with it
            pn.state.on_session_destroyed(lambda _context: self.stop_replay())

        self._layout = pn.Column(
            self.alert,
            self.note,
            pn.Row(self.source, self.path, self.mode),
            pn.Row(
                self.realtime,
                self.speed,
                self.replay_button,
                self.stop_button,
                self.mask_negative,
                align="end",
            ),
            self._photon_options,
            pn.Row(
                pn.pane.Markdown("**Accumulation**"),
                self.start_button,
                self.pause_button,
                self.reset_button,
                self.max_filter,
                self.zoom,
            ),
            self.geometry,
            self.count,
            pn.Row(self.image_pane, self.roi_editor),
            self.geometry.pattern_pane,
            self.steps_pane,
            pn.Row(self.clean_pane, self.histogram_pane),
            sizing_mode="stretch_width",
        )
        self._show_image()
        self._fill_sources()

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ recording

    def _fill_sources(self) -> None:
        entries = stream_entries(self.state.context)
        self.source.options = [*entries, PATH_CHOICE]
        current = self.state.entry if self.state.entry in entries else None
        self.source.value = current or (entries[0] if entries else PATH_CHOICE)

    def _follow_entry(self, event) -> None:
        if event.new in self.source.options:
            self.source.value = event.new

    def _on_source(self, event) -> None:
        if event.new not in (None, PATH_CHOICE):
            pn.state.execute(self._load_entry)

    async def _load_entry(self) -> None:
        """Learn the chosen entry's frame shape (headers only, off the event loop)."""
        name, context = self.source.value, self.state.context
        try:
            _, shape = await asyncio.to_thread(entry_recording, context, name)
            poni = entry_poni(context, name)
        except Exception as err:  # a bad entry: shown, the page keeps working
            if self.source.value == name:
                self._set_error("recording", error_message(err))
            return
        if self.source.value == name:
            self._set_error("recording", None)
            self._set_shape(shape)
            await self.geometry.follow_entry(shape, poni)
            self.refresh(force=True)

    def recording(self) -> list[str] | str:
        """The stream files to replay: the path typed, else the chosen entry's files.

        Raises
        ------
        OptionError
            Neither a path nor an entry.
        BeamcatError
            The entry cannot be opened.
        """
        path = self.path.value.strip()
        if path:
            return str(Path(path).expanduser())
        if self.source.value in (None, PATH_CHOICE):
            raise OptionError("choose a recording: a catalog entry or a path")
        return entry_recording(self.state.context, self.source.value)[0]

    # ------------------------------------------------------------------ replay

    def pipeline_options(self) -> dict[str, Any]:
        """`LivePipeline` options from the widgets (ROIs excepted)."""
        options = {"mode": self.mode.value, "mask_negative": self.mask_negative.value}
        if self.mode.value != "image":
            options |= {"background": self.background.value, "threshold": self.threshold.value}
        if self.mode.value == "photon":
            options |= {"energy_min": self.energy_min.value, "energy_max": self.energy_max.value}
        return options

    def _on_replay(self, *_) -> None:
        self.start_replay()

    def start_replay(self, source: str | Sequence[str] | None = None) -> Replay | None:
        """Replay `source` (default: `recording`) into the pipeline in a background thread.

        The pipeline is kept when its options are unchanged (the accumulated
        image carries over, the step table starts again), else made anew.

        Returns
        -------
        Replay or None
            None when the choice is bad (the alert says why) or a replay runs.
        """
        if self.replay is not None and not self.replay.done:
            self._set_note("replay", "a replay is running: stop it first")
            return None
        self._set_note("replay", None)
        try:
            source = self.recording() if source is None else source
            options = self.pipeline_options()
            if self.pipeline is None or options != self._options:
                self.pipeline = LivePipeline(rois=self.roi_editor.rois or None, **options)
                self._options = options
            else:
                self.pipeline.new_scan()
                self.pipeline.set_rois(self.roi_editor.rois or None)
        except Exception as err:  # bad options or entry: shown, never raised
            self._set_error("replay", error_message(err))
            return None
        self._set_error("replay", None)
        self.replay = Replay(
            source, self.pipeline, realtime=self.realtime.value, speed=self.speed.value
        )
        self.stop_button.disabled = False
        self._periodic(True)
        return self.replay

    def stop_replay(self) -> None:
        """Stop the running replay after its current event."""
        if self.replay is not None:
            self.replay.stop()

    def wait(self, timeout: float = 60) -> None:
        """Wait for the replay thread to end, then draw its last state (for scripts and tests)."""
        if self.replay is not None:
            self.replay.thread.join(timeout)
        self.refresh()

    def _periodic(self, on: bool) -> None:
        if on and self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS)
        elif not on and self._callback is not None:
            self._callback.stop()
            self._callback = None

    # ------------------------------------------------------------------ controls

    def _accumulation(self, action: str) -> None:
        """Start, stop or reset the accumulator (made on the first replay)."""
        if self.pipeline is None:
            self._set_note("accumulation", "no pipeline yet: replay a recording first")
            return
        self._set_note("accumulation", None)
        getattr(self.pipeline, action)()
        self.refresh(force=True)

    def _on_mode(self, event) -> None:
        self._photon_options.visible = event.new != "image"
        for widget in (self.energy_min, self.energy_max):
            widget.visible = event.new == "photon"
        self.clean_pane.visible = self.histogram_pane.visible = event.new == "photon"

    def _on_rois(self, event) -> None:
        self.zoom.options = [WHOLE_IMAGE, *event.new]
        if self.pipeline is not None:
            try:
                self.pipeline.set_rois(event.new or None)
            except Exception as err:  # a ROI outside the frame
                self._set_error("rois", error_message(err))
                return
        self._set_error("rois", None)
        self.refresh(force=True)

    def _set_shape(self, shape: tuple[int, int]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.roi_editor.shape = self.shape

    # ------------------------------------------------------------------ drawing

    def refresh(self, force: bool = False) -> None:
        """Draw the pipeline's latest snapshot (the periodic callback).

        Cheap when nothing changed: the plots are redrawn only when frames
        arrived, the accumulation changed, or `force`.
        """
        replay = self.replay
        if replay is not None and replay.done:
            self._periodic(False)
            self.stop_button.disabled = True
            if replay.error is not None:
                self._set_error(
                    "replay", f"replay of {_name(replay.source)}: " + error_message(replay.error)
                )
        self.view = view = self.pipeline.snapshot() if self.pipeline is not None else None
        if view is not None:
            self._set_note("density", _density_note(view.get("density", {})))
        key = None
        if view is not None:
            key = (id(self.pipeline), view["frames"], view["count"], view["running"])
        if key == self._drawn and not force:
            self._show_count(view, replay)
            return
        self._drawn = key
        self._show_image()
        self._show_steps()
        self._show_photon()
        self._show_count(view, replay)
        self._integrate(view)

    def _show_count(self, view: dict | None, replay: Replay | None) -> None:
        if view is None:
            self.count.object = "No frame yet: choose a recording and press Replay."
            return
        state = "accumulating" if view["running"] else "stopped"
        text = f"**{view['count']} frames** accumulated ({state}) · {view['frames']} processed"
        latency = view["latency"]
        if latency.get("n"):
            text += f" · latency {latency['mean'] * 1e3:.1f} ms (max {latency['max'] * 1e3:.1f})"
        if replay is not None:
            status = "running" if not replay.done else "stopped" if replay.stopped else "done"
            text += f" · replay {status} ({replay.events} events)"
        self.count.object = text

    def _show_image(self) -> None:
        view = self.view or {}
        image, title = view.get("image"), f"accumulated: {view.get('count', 0)} frames"
        if image is None and view.get("last") is not None:
            image, title = view["last"], "latest frame (not accumulated)"
        if image is None:
            image, title = np.zeros(self.shape or (64, 64)), "accumulated image"
        if self.shape != image.shape:
            self._set_shape(image.shape)
            self.geometry.set_shape(image.shape)
        region = self.roi_editor.rois.get(self.zoom.value)
        self.shown = display_image(image, region=region, max_filter=self.max_filter.value)
        geometry = (self.shown.shape, self.shown.attrs["factor"], self.shown.attrs["region"])
        how = "block max" if self.max_filter.value else "block mean"
        factor = self.shown.attrs["factor"]
        title += f" (1:{factor}, {how})" if factor > 1 else ""
        if geometry != self._geometry:
            # a new overlay per geometry: a DynamicMap keeps its first image's axis ranges
            self._geometry = geometry
            self._image_pipe = hv.streams.Pipe(data=(self.shown, title))
            image_map = hv.DynamicMap(image_element, streams=[self._image_pipe])
            self.geometry.set_region(self.shown.attrs["region"] if region is not None else None)
            self.image_pane.object = (
                image_map * self.geometry.overlay * self.roi_editor.boxes * self.roi_editor.labels
            ).opts(active_tools=["box_edit", "wheel_zoom"])
            self.roi_editor.redraw()
        else:
            self._image_pipe.send((self.shown, title))

    def _integrate(self, view: dict | None) -> None:
        """Hand the accumulated (else the latest) image to the geometry panel to integrate."""
        if view is None or self.pipeline is None:
            return
        self.geometry.set_header_energy(self.pipeline.header.get("energy"))
        image, title = view.get("image"), f"{view.get('count', 0)} frames accumulated"
        if image is None:
            image, title = view.get("last"), "latest frame"
        if image is not None:
            self.geometry.submit(image, self.pipeline.invalid_pixels(), title)

    def _show_steps(self) -> None:
        table = (self.view or {}).get("step_table")
        if table is None:
            self.steps_pane.object = _empty("ROI means: draw a ROI, then replay")
            return
        colours = [self.roi_editor.color(str(roi)) for roi in table["roi"].values]
        steps = step_means_hv(table, colours=colours)  # the figures' twin, as `beamcat replay`
        x = steps.get(0).kdims[0].name  # the motor it chose, else the step
        self.steps_pane.object = steps.opts(
            title=f"ROI means vs {x}", height=280, width=640, responsive=False
        )

    def _show_photon(self) -> None:
        view = self.view or {}
        clean, histogram = view.get("clean_image"), view.get("histogram")
        if clean is not None:
            # block-max reduced like the accumulated image (clean_image_hv draws every pixel)
            shown = display_image(clean, max_filter=True)
            self.clean_pane.object = image_element(
                (shown, f"clean image: {view.get('events', 0)} photons")
            ).opts(cmap="viridis")
        if histogram is not None:
            self.histogram_pane.object = energy_histogram_hv(histogram).opts(
                title="Energy histogram (cuts dashed)", height=300, width=480, responsive=False
            )


def _empty(title: str) -> hv.Curve:
    return hv.Curve([]).opts(title=title, height=220, width=480)


def _name(source) -> str:
    return Path(source).name if isinstance(source, str) else f"{len(source)} files"


def _density_note(density: Mapping) -> str | None:
    if not density.get("dense"):
        return None
    return (
        f"{density['over_threshold_fraction']:.2%} of the pixels above threshold and "
        f"{density['pileup_fraction']:.2%} pile-ups: too dense for single-photon counting"
    )


def page(catalog=None, **options) -> LivePage:
    """The live page, inline in a notebook or served; `catalog`: see `app_state`."""
    return LivePage(app_state(catalog, **options))
