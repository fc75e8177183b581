"""The 4D-STEM page: a virtual image beside the pattern of the position under the mouse or clicked.

Pick a scan entry ``(scan_y, scan_x, y, x)``. The left image is a virtual
detector image: a bright-field disc or an annulus (ADF), set by its inner and
outer radii (0 inner: a disc; the BF and ADF buttons set the usual ones), or
drawn on the pattern: a click on the pattern sets the outer radius, the inner
radius or the centre, as chosen. It comes from one chunked pass over the scan
(`beamcat.analyses.stem4d.virtual_images`), cached per entry and detector.

The right image is the pattern of the position under the mouse (with "Follow
the mouse") or clicked on the virtual image: ONE frame is read for it. The
virtual detector is drawn on it, and, when the entry carries a calibration
(``attrs["calibration"]``, catalog option ``calibration=``), the fitted ellipse
(red) and the Au rings (white). Below, that position's radial mean and
normalised variance (`beamcat.analyses.stem4d.radial_profiles`: elliptical bins
when calibrated, else circular ones around the bright-field disc's centre).
"NMF" factorises every position's radial profiles in a worker thread
(`beamcat.analyses.decomposition.nmf`) and shows the components and loading maps.

Work runs in worker threads under a spinner (`beamcat.apps._jobs`): a later
position or detector supersedes an earlier one. A bad choice (an annulus
outside the frame, inner >= outer, too many components) shows an alert and
leaves the rest of the page working.

Examples
--------
>>> from beamcat.apps import stem4d_page
>>> page = stem4d_page.page()  # the demo catalog, inline in a notebook  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.analyses.stem4d_calibration import AuCalibration
from beamcat.apps._banners import Banners
from beamcat.apps._jobs import Jobs
from beamcat.apps._plots import plot_pane
from beamcat.apps.state import AppState, app_state
from beamcat.apps.stem4d_data import (
    SCAN_DIMS,
    Detector,
    calibration_of,
    default_detectors,
    find_centre,
    mean_pattern,
    nmf_of,
    nmf_start,
    pattern_at,
    position_profile,
    scan_frames,
    virtual_image,
)
from beamcat.apps.stem4d_plots import (
    calibration_element,
    detector_element,
    marker_element,
    pattern_element,
    profile_elements,
    scan_position,
    virtual_element,
)
from beamcat.figures.decomposition import nmf_hv

#: what a click on the pattern sets
CLICK_SETS = ("outer radius", "inner radius", "centre")


class Stem4DPage(pn.viewable.Viewer):
    """Virtual image, the pattern of one position, its radial profile, NMF of the scan.

    Parameters
    ----------
    state : AppState
        The session's state: choosing an entry sets ``state.entry``; a scan
        chosen on another page becomes this page's.

    Attributes
    ----------
    frames : DataArray (scan_y, scan_x, y, x) or None
        The entry's frames, lazy.
    calibration : AuCalibration or None
    centre : (x, y) or None
        The detector's centre, px (the calibration's, else the bright-field disc's).
    detector : Detector or None
        The virtual detector of `image`.
    image : ndarray (scan_y, scan_x) or None
        The virtual image.
    position : (i, j) or None
        The scan position shown.
    pattern : ndarray (y, x) or None
        Its pattern.
    profile : Dataset (q) or None
        Its radial mean and variance.
    nmf : Dataset or None
        The last NMF (``components``, ``loadings``).
    tap, pointer : holoviews.streams.Tap, PointerXY
        A click on, and the mouse over, the virtual image (scan positions).
    pattern_tap : holoviews.streams.Tap
        A click on the pattern (sets the detector, as ``click_sets`` says).
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.frames: xr.DataArray | None = None
        self.calibration: AuCalibration | None = None
        self.mean: np.ndarray | None = None
        self.centre: tuple[float, float] | None = None
        self.detector: Detector | None = None
        self.image: np.ndarray | None = None
        self.position: tuple[int, int] | None = None
        self.pattern: np.ndarray | None = None
        self.profile: xr.Dataset | None = None
        self.nmf: xr.Dataset | None = None
        self.presets: dict[str, Detector] = {}
        self.banners = Banners()
        self.jobs = Jobs(self.banners.set_error)
        self._choosing = False  # the page sets its widgets itself: no updates

        self.entry = pn.widgets.Select(label="Entry", width=220)
        self.inner = pn.widgets.FloatInput(label="Inner radius (px)", start=0, width=120)
        self.outer = pn.widgets.FloatInput(label="Outer radius (px)", start=0, width=120)
        self.bf_button = pn.widgets.Button(label="BF", width=60)
        self.adf_button = pn.widgets.Button(label="ADF", width=60)
        self.click_sets = pn.widgets.RadioButtonGroup(options=list(CLICK_SETS), value=CLICK_SETS[0])
        self.follow = pn.widgets.Checkbox(label="Follow the mouse", value=True)
        self.n_components = pn.widgets.IntInput(label="NMF components", value=2, start=1, width=120)
        self.nmf_profile = pn.widgets.Select(
            label="Profile", options=["variance", "mean"], value="variance", width=110
        )
        self.nmf_from = pn.widgets.FloatInput(label="NMF from q", start=0, width=120)
        self.nmf_button = pn.widgets.Button(label="NMF", color="primary", width=80)
        self.status = pn.pane.Markdown("Choose an entry.", css_classes=["beamcat-stem4d-status"])

        self.virtual_pane = plot_pane(hv.Image([]), css_classes=["beamcat-stem4d-virtual"])
        self.pattern_pane = plot_pane(hv.Image([]), css_classes=["beamcat-stem4d-pattern"])
        self.mean_pane = plot_pane(hv.Curve([]), sizing_mode="stretch_width")
        self.variance_pane = plot_pane(hv.Curve([]), sizing_mode="stretch_width")
        self.nmf_pane = plot_pane(
            hv.Curve([]).opts(title="NMF: press NMF"),
            sizing_mode="stretch_width",
            css_classes=["beamcat-stem4d-nmf"],
        )
        self._new_plots()
        self._layout = pn.Column(
            self.banners.alert,
            pn.Row(
                self.entry,
                self.inner,
                self.outer,
                self.bf_button,
                self.adf_button,
                pn.Column("A click on the pattern sets", self.click_sets),
                self.follow,
                align="end",
            ),
            self.status,
            pn.Row(self.virtual_pane, self.pattern_pane),
            pn.Row(self.mean_pane, self.variance_pane, sizing_mode="stretch_width"),
            pn.Row(
                self.n_components, self.nmf_profile, self.nmf_from, self.nmf_button, align="end"
            ),
            self.nmf_pane,
            sizing_mode="stretch_width",
        )

        self.entry.param.watch(self._on_entry, "value")
        for widget in (self.inner, self.outer):
            widget.param.watch(self._detector_changed, "value")
        self.bf_button.on_click(lambda *_: self.use_preset("BF"))
        self.adf_button.on_click(lambda *_: self.use_preset("ADF"))
        self.nmf_button.on_click(lambda *_: pn.state.execute(self.compute_nmf))
        state.param.watch(self._follow_entry, "entry")
        pn.state.onload(self._fill_entries)

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ plots

    def _new_plots(self, virtual=(None, "Virtual image"), pattern=(None, "Pattern"), *, rings=None):
        """Fresh overlays and streams, starting with the entry's images.

        A DynamicMap keeps the axis ranges of its first image: each entry gets its
        own, made with its first virtual image and pattern, `rings` its calibration.
        """
        self._virtual_pipe = hv.streams.Pipe(data=virtual)
        self._marker_pipe = hv.streams.Pipe(data=None)
        self._pattern_pipe = hv.streams.Pipe(data=pattern)
        self._detector_pipe = hv.streams.Pipe(data=None)
        self._calibration_pipe = hv.streams.Pipe(data=rings)
        virtual = hv.DynamicMap(virtual_element, streams=[self._virtual_pipe])
        pattern = hv.DynamicMap(pattern_element, streams=[self._pattern_pipe])
        self.tap = hv.streams.Tap(source=virtual, x=None, y=None)
        self.pointer = hv.streams.PointerXY(source=virtual, x=None, y=None)
        self.pattern_tap = hv.streams.Tap(source=pattern, x=None, y=None)
        self.tap.add_subscriber(lambda x, y: self._on_scan(x, y, clicked=True))
        self.pointer.add_subscriber(lambda x, y: self._on_scan(x, y, clicked=False))
        self.pattern_tap.add_subscriber(self._on_pattern_click)
        marker = hv.DynamicMap(lambda data: marker_element(data), streams=[self._marker_pipe])
        drawn = hv.DynamicMap(lambda data: detector_element(data), streams=[self._detector_pipe])
        rings = hv.DynamicMap(
            lambda data: calibration_element(data), streams=[self._calibration_pipe]
        )
        self.virtual_pane.object = (virtual * marker).opts(active_tools=["tap"])
        self.pattern_pane.object = (pattern * drawn * rings).opts(active_tools=["tap"])

    # ------------------------------------------------------------------ choices

    async def _fill_entries(self) -> None:
        """Offer the 4D-STEM scans; the selected entry if it is one, else the first calibrated."""
        infos = await self.jobs.entry_infos(self.state.context, self._layout)
        if infos is None:
            return
        scans = [n for n, info in infos.items() if info.dims == (*SCAN_DIMS, "y", "x")]
        rows = self.state.context.rows
        calibrated = [n for n in scans if rows[n]["options"].get("calibration")]
        self._choosing = True
        try:
            self.entry.options = scans
            if scans:
                first = (calibrated or scans)[0]
                self.entry.value = self.state.entry if self.state.entry in scans else first
        finally:
            self._choosing = False
        if not scans:
            self.status.object = "No 4D-STEM scan (scan_y, scan_x, y, x) in this catalog."
            return
        await self.load()

    def _follow_entry(self, event) -> None:
        if event.new in self.entry.options:
            self.entry.value = event.new

    def _on_entry(self, event) -> None:
        if event.new is not None and not self._choosing:
            self.state.entry = event.new
            pn.state.execute(self.load)

    def _set_radii(self, inner: float, outer: float) -> None:
        self._choosing = True
        try:
            self.inner.value, self.outer.value = inner, outer
        finally:
            self._choosing = False

    def use_preset(self, name: str) -> None:
        """Set the BF disc or the ADF annulus of the entry, then its virtual image."""
        if name in self.presets:
            preset = self.presets[name]
            self._set_radii(preset.inner, preset.outer)
            pn.state.execute(self.update_virtual)

    def _detector_changed(self, *_) -> None:
        if not self._choosing:
            pn.state.execute(self.update_virtual)

    def _on_scan(self, x, y, *, clicked: bool) -> None:
        """A click, or the mouse moving over the virtual image: show that position's pattern."""
        if self.image is None or (not clicked and not self.follow.value):
            return
        position = scan_position(x, y, self.image.shape)
        if position is not None and position != self.position:
            pn.state.execute(functools.partial(self.select, *position))

    def _on_pattern_click(self, x, y) -> None:
        """A click on the pattern sets the detector's outer or inner radius, or its centre."""
        if x is None or y is None or self.centre is None:
            return
        px, py = x - 0.5, y - 0.5  # pixel centres at integer values
        if self.click_sets.value == "centre":
            self.centre = (round(px, 1), round(py, 1))
            pn.state.execute(self.update_virtual)
            return
        radius = round(math.hypot(px - self.centre[0], py - self.centre[1]), 1)
        if self.click_sets.value == "outer radius":
            self.outer.value = radius
        else:
            self.inner.value = radius

    # ------------------------------------------------------------------ work

    async def load(self) -> None:
        """Open the chosen scan, its mean pattern and calibration; draw the virtual image."""
        name, context = self.entry.value, self.state.context

        def opened():
            frames = scan_frames(context, name)
            cal, mean = calibration_of(frames), mean_pattern(context, name)
            centre = (cal.x0, cal.y0) if cal is not None else find_centre(mean)
            presets = default_detectors(mean, centre)
            first = virtual_image(context, name, presets["BF"])  # cached for update_virtual
            return frames, cal, mean, centre, presets, first

        ok, loaded = await self.jobs.run("entry", opened, self._layout)
        if ok is None:
            return
        self.image = self.position = self.pattern = self.profile = self.nmf = None
        if not ok:
            self.frames = self.calibration = self.mean = self.centre = None
            self.status.object = "No scan: see the message above."
            return
        self.frames, cal, self.mean, self.centre, self.presets, first = loaded
        self.calibration = cal
        bf = self.presets["BF"]
        self._new_plots(
            (first, f"Virtual image: {bf.label}"), (self.mean, f"{name}: mean pattern"), rings=cal
        )
        self._set_radii(bf.inner, bf.outer)
        self.nmf_from.value = nmf_start(bf, cal)
        ny, nx = (self.frames.sizes[d] for d in SCAN_DIMS)
        await self.update_virtual()
        await self.select(ny // 2, nx // 2)

    async def update_virtual(self) -> None:
        """The virtual image of the detector the widgets describe (cached per detector)."""
        if self.frames is None:
            return
        name, context = self.entry.value, self.state.context
        detector = Detector(float(self.inner.value or 0), float(self.outer.value or 0), self.centre)

        def image():
            detector.mask(self.frames.shape[-2:])  # a bad detector fails here, with its message
            return virtual_image(context, name, detector)

        ok, result = await self.jobs.run("virtual image", image, self.virtual_pane)
        if not ok:
            return
        self.detector, self.image = detector, result
        self._detector_pipe.send(detector)
        self._virtual_pipe.send((result, f"Virtual image: {detector.label}"))
        self._status()

    async def select(self, i: int, j: int) -> None:
        """Show the pattern of scan position (i, j) (one frame read) and its radial profile."""
        frames = self.frames
        if frames is None:
            return
        centre = self.centre

        def read():
            pattern = pattern_at(frames, i, j)
            return pattern, position_profile(frames, pattern, centre)

        ok, result = await self.jobs.run("pattern", read, self.pattern_pane)
        if not ok:
            return
        self.position, (self.pattern, self.profile) = (i, j), result
        where = f"scan_y={i}, scan_x={j}"
        self._marker_pipe.send(self.position)
        self._pattern_pipe.send((self.pattern, f"Pattern at {where}"))
        mean, variance = profile_elements(self.profile, f"at {where}")
        self.mean_pane.object, self.variance_pane.object = mean, variance
        self._status()

    async def compute_nmf(self) -> None:
        """NMF of every position's radial profiles in a worker thread; components and loadings."""
        if self.frames is None:
            return
        name, context, centre = self.entry.value, self.state.context, self.centre
        n, profile = int(self.n_components.value), self.nmf_profile.value
        options = {"centre": centre, "profile": profile, "q_from": self.nmf_from.value}
        ok, result = await self.jobs.run(
            "nmf", lambda: nmf_of(context, name, n, **options), self.nmf_pane
        )
        if not ok:
            return
        self.nmf = result
        layout = nmf_hv(result)
        layout[0].opts(title=f"NMF of {name}: {n} components of the radial {profile}")
        self.nmf_pane.object = layout
        self._status()

    def _status(self) -> None:
        frames, cal = self.frames, self.calibration
        if frames is None:
            return
        ny, nx, h, w = frames.shape
        parts = [f"**{self.entry.value}**: {ny} x {nx} scan of {h} x {w} patterns"]
        if cal is not None:
            parts.append(
                f"calibrated ({cal.reflection or 'Au'} ring, {cal.reciprocal_pixel_size:.4g} "
                f"1/Å per px, b/a {cal.b / cal.a:.3f})"
            )
        else:
            parts.append(
                f"no calibration: circular bins around ({self.centre[0]:.1f}, "
                f"{self.centre[1]:.1f}) px"
            )
        if self.detector is not None:
            parts.append(self.detector.label)
        if self.position is not None:
            parts.append(f"position scan_y={self.position[0]}, scan_x={self.position[1]}")
        if self.nmf is not None:
            parts.append(f"NMF: {self.nmf.sizes['component']} components")
        self.status.object = " · ".join(parts)


def page(catalog=None, **options) -> Stem4DPage:
    """The 4D-STEM page, inline in a notebook or served; `catalog`: see `app_state`."""
    return Stem4DPage(app_state(catalog, **options))
