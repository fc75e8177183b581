"""The diffraction page: an image with calibrant rings, its 1D pattern and cake, a mask to edit.

Pick an entry of images and a geometry: the PONI the entry carries (catalog
option ``poni=``) or a PONI file typed in, with the Dioptas orientation
(``flip``) as a checkbox. The entry's mean image is shown with the rings of a
calibrant (CeO2, LaB6 ... pyFAI's; `beamcat.analyses.calibrant.rings`) at the
PONI's energy or one typed in, and the masked pixels in red. The mask is the
detector's gaps (negative pixels), a threshold (pixels below or above it) and
rectangles drawn on the image (bokeh's box-edit tool: shift + drag draws, drag
moves, tap then Backspace deletes; or edit their numbers in the table). Below,
the 1D pattern (`beamcat.analyses.azimuthal.integrate1d`, in 2θ or q, the rings'
positions marked) and the cake (``integrate2d``) follow every change, drawn by
the figures' twins (`beamcat.figures.diffraction`).

Work is split as in the other pages: reading the entry, the rings and the
integrations run in worker threads under a spinner (`beamcat.apps._jobs`), the
plots are drawn on the event loop; a later choice supersedes an earlier one. A
bad choice (an entry without PONI, a PONI of another detector) shows an alert
and leaves the rest of the page working.

Examples
--------
>>> from beamcat.apps import diffraction_page
>>> page = diffraction_page.page()  # the demo catalog, inline in a notebook  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.analyses.azimuthal import integrate1d, integrate2d
from beamcat.analyses.geometry import Geometry
from beamcat.apps._banners import Banners
from beamcat.apps._jobs import Jobs
from beamcat.apps._plots import plot_pane
from beamcat.apps.diffraction_data import (
    CALIBRANTS,
    Curve,
    build_mask,
    chosen_geometry,
    entry_image,
    ring_curves,
    ring_table,
)
from beamcat.apps.diffraction_plots import mask_element, rings_element
from beamcat.apps.live_display import display_image, image_element
from beamcat.apps.roi_editor import RoiEditor
from beamcat.apps.state import AppState, app_state
from beamcat.figures.diffraction import cake_hv, pattern_hv

ENTRY_PONI = "entry's PONI"
PONI_FILE = "PONI file"
NO_RINGS = "(none)"
#: unit choice -> pyFAI unit of the integrations
UNITS = {"2θ (deg)": "2th_deg", "q (nm⁻¹)": "q_nm^-1"}
#: azimuthal bins of the cake
NPT_AZIM = 360


class DiffractionPage(pn.viewable.Viewer):
    """An entry's image with rings and mask, its 1D pattern and cake.

    Parameters
    ----------
    state : AppState
        The session's state: choosing an entry sets ``state.entry``; an image
        entry chosen on another page becomes this page's.

    Attributes
    ----------
    image : DataArray (y, x) or None
        The entry's mean image.
    geometry : Geometry or None
        The geometry in use (PONI, flip and energy applied).
    rings : Dataset or None
        The rings drawn (`beamcat.apps.diffraction_data.ring_table`).
    curves : list of Curve
        The same, one by one.
    mask : ndarray (y, x) bool or None
        The pixels left out of the integrations.
    pattern : Dataset (radial) or None
        The 1D integration (``intensity``, ``count``).
    cake : Dataset (chi, radial) or None
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.image: xr.DataArray | None = None
        self.entry_geometry: Geometry | None = None
        self.geometry: Geometry | None = None
        self.rings: xr.Dataset | None = None
        self.curves: list[Curve] = []
        self.mask: np.ndarray | None = None
        self.pattern: xr.Dataset | None = None
        self.cake: xr.Dataset | None = None
        self.banners = Banners()
        self._set_error = self.banners.set_error
        self.jobs = Jobs(self._set_error)
        self._choosing = False  # the page sets its widgets itself: no updates, no selection

        self.entry = pn.widgets.Select(label="Entry", width=220)
        self.source = pn.widgets.Select(
            label="Geometry", options=[ENTRY_PONI, PONI_FILE], value=ENTRY_PONI, width=130
        )
        self.poni = pn.widgets.TextInput(
            label="PONI file", placeholder="/data/CeO2.poni", width=260, disabled=True
        )
        self.flip = pn.widgets.Checkbox(label="PONI of the flipped image (Dioptas)", value=False)
        self.calibrant = pn.widgets.Select(
            label="Rings", options=[*CALIBRANTS, NO_RINGS], value="CeO2", width=120
        )
        self.energy = pn.widgets.FloatInput(
            label="Energy (eV)", value=None, start=0, placeholder="the PONI's", width=120
        )
        self.unit = pn.widgets.Select(label="Unit", options=list(UNITS), width=110)
        self.npt = pn.widgets.IntInput(label="Bins", value=1000, start=10, end=20000, width=90)
        self.low = pn.widgets.FloatInput(label="Mask below", value=None, width=110)
        self.high = pn.widgets.FloatInput(label="Mask above", value=None, width=110)
        self.alert = self.banners.alert
        self.status = pn.pane.Markdown("Choose an entry.", css_classes=["beamcat-diffraction"])
        self.regions = RoiEditor(report_error=self._set_error)

        self._mask_pipe = hv.streams.Pipe(data=None)
        self._rings_pipe = hv.streams.Pipe(data=[])
        self._mask_map = hv.DynamicMap(
            lambda data: mask_element(data) if data is not None else hv.Image([]),
            streams=[self._mask_pipe],
        )
        self._rings_map = hv.DynamicMap(
            lambda data: rings_element(data), streams=[self._rings_pipe]
        )
        self.image_pane = plot_pane(hv.Image([]), css_classes=["beamcat-diffraction-image"])
        self.pattern_pane = plot_pane(
            hv.Curve([]).opts(title="1D pattern"), css_classes=["beamcat-diffraction-pattern"]
        )
        self.cake_pane = plot_pane(
            hv.Image([]).opts(title="Cake"), css_classes=["beamcat-diffraction-cake"]
        )
        self._layout = pn.Column(
            self.alert,
            pn.Row(self.entry, self.source, self.poni, self.flip, align="end"),
            pn.Row(self.calibrant, self.energy, self.unit, self.npt, self.low, self.high),
            pn.Row(self.image_pane, pn.Column("**Masked regions**", self.regions)),
            pn.Row(self.pattern_pane, self.cake_pane),
            self.status,
            sizing_mode="stretch_width",
        )

        self.entry.param.watch(self._on_entry, "value")
        self.source.param.watch(self._on_source, "value")
        for widget in (self.poni, self.flip, self.energy):
            widget.param.watch(self._geometry_changed, "value")
        self.calibrant.param.watch(lambda *_: pn.state.execute(self.update_rings), "value")
        for widget in (self.low, self.high, self.unit, self.npt):
            widget.param.watch(lambda *_: pn.state.execute(self.update_patterns), "value")
        self.regions.param.watch(lambda *_: pn.state.execute(self.update_patterns), "rois")
        state.param.watch(self._follow_entry, "entry")
        pn.state.onload(self._fill_entries)

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ choices

    async def _fill_entries(self) -> None:
        """Offer the entries of images; the selected one, else the first with a PONI."""
        context = self.state.context
        infos = await self.jobs.entry_infos(context, self._layout)
        if infos is None:
            return
        images = [n for n, info in infos.items() if info.dims[-2:] == ("y", "x")]
        with_poni = [n for n in images if context.rows[n]["options"].get("poni")]
        self._choosing = True
        try:
            self.entry.options = images
            if self.state.entry in images:
                self.entry.value = self.state.entry
            elif images:
                self.entry.value = (with_poni or images)[0]
        finally:
            self._choosing = False
        if not images:
            self.status.object = "No entry of images (y, x) in this catalog."
            return
        await self.load()

    def _follow_entry(self, event) -> None:
        if event.new in self.entry.options:
            self.entry.value = event.new

    def _on_entry(self, event) -> None:
        if event.new is not None and not self._choosing:
            self.state.entry = event.new  # a user's choice, not the page's default
            pn.state.execute(self.load)

    def _on_source(self, event) -> None:
        self.poni.disabled = event.new != PONI_FILE
        self._geometry_changed()

    def _geometry_changed(self, *_) -> None:
        if not self._choosing:
            pn.state.execute(self.update_geometry)

    # ------------------------------------------------------------------ work

    async def load(self) -> None:
        """Read the chosen entry's mean image and PONI, then draw everything."""
        name, context = self.entry.value, self.state.context
        ok, loaded = await self.jobs.run(
            "entry", lambda: entry_image(context, name), self.image_pane
        )
        if ok is None:
            return
        self.image, self.entry_geometry = loaded if ok else (None, None)
        if self.entry_geometry is not None:
            self._choosing = True
            try:
                self.flip.value = self.entry_geometry.flip  # the entry's orientation
            finally:
                self._choosing = False
        self.regions.shape = None if self.image is None else self.image.shape
        self._draw_image()
        await self.update_geometry()

    async def update_geometry(self) -> None:
        """Resolve the geometry (PONI, flip, energy), then the rings and the patterns."""
        image = self.image
        if image is None:
            return
        poni = self.poni.value.strip() if self.source.value == PONI_FILE else None
        options = {"flip": self.flip.value, "energy_ev": self.energy.value or None}
        ok, geometry = await self.jobs.run(
            "geometry",
            lambda: chosen_geometry(
                self.entry_geometry, poni, shape=image.shape, name=self.entry.value, **options
            ),
        )
        if ok is None:
            return
        self.geometry = geometry
        await asyncio.gather(self.update_rings(), self.update_patterns())

    async def update_rings(self) -> None:
        """The calibrant's rings on the detector (none without geometry or calibrant)."""
        geometry, image, calibrant = self.geometry, self.image, self.calibrant.value
        if geometry is None or image is None or calibrant == NO_RINGS:
            self.jobs.supersede("rings")
            self._show_rings(None)
            return
        ok, table = await self.jobs.run(
            "rings", lambda: ring_table(geometry, image.shape, calibrant=calibrant)
        )
        if ok is not None:
            self._show_rings(table if ok else None)

    async def update_patterns(self) -> None:
        """The mask, then the 1D pattern and the cake of the masked image."""
        geometry, image = self.geometry, self.image
        if image is None:
            return
        regions = dict(self.regions.rois)
        mask = build_mask(image.values, low=self.low.value, high=self.high.value, regions=regions)
        self.mask = mask
        self._mask_pipe.send((display_image(mask.astype(float), max_filter=True), None))
        if geometry is None:
            self._show_patterns(None, None)
            return
        unit, npt = UNITS[self.unit.value], self.npt.value

        def integrate():
            pattern = integrate1d(image, geometry, npt=npt, unit=unit, mask=mask)
            cake = integrate2d(
                image, geometry, npt_rad=npt, npt_azim=NPT_AZIM, unit=unit, mask=mask
            )
            return pattern.compute(), cake.compute()

        ok, patterns = await self.jobs.run("integration", integrate, self.pattern_pane)
        if ok is not None:
            self._show_patterns(*(patterns if ok else (None, None)))

    # ------------------------------------------------------------------ drawing

    def _draw_image(self) -> None:
        """A new image overlay (a DynamicMap would keep the first image's axis ranges)."""
        if self.image is None:
            self.image_pane.object = hv.Image([]).opts(title="No image")
            return
        shown = display_image(self.image.values, max_filter=False)
        element = hv.DynamicMap(image_element, streams=[hv.streams.Pipe(data=(shown, ""))])
        title = f"{self.entry.value}: mean image"
        self.image_pane.object = (
            element * self._mask_map * self._rings_map * self.regions.boxes * self.regions.labels
        ).opts(title=title, active_tools=["box_edit", "wheel_zoom"])
        self.regions.redraw()

    def _show_rings(self, table: xr.Dataset | None) -> None:
        self.rings, self.curves = table, ring_curves(table)
        self._rings_pipe.send(self.curves)
        self._show_patterns(self.pattern, self.cake)

    def _show_patterns(self, pattern: xr.Dataset | None, cake: xr.Dataset | None) -> None:
        self.pattern, self.cake = pattern, cake
        if pattern is None:
            self.pattern_pane.object = hv.Curve([]).opts(title="1D pattern: no geometry")
            self.cake_pane.object = hv.Image([]).opts(title="Cake: no geometry")
            self._status()
            return
        size = {"width": 560, "height": 320, "responsive": False}
        self.pattern_pane.object = pattern_hv(pattern, rings=self.rings).opts(
            title=f"1D pattern of {self.entry.value}", **size
        )
        self.cake_pane.object = cake_hv(cake, rings=self.rings).opts(
            title=f"Cake of {self.entry.value}", **size
        )
        self._status()

    def _status(self) -> None:
        geometry = self.geometry
        parts = [f"**{self.entry.value}**"]
        if geometry is not None:
            ai = geometry.integrator
            parts.append(
                f"distance {ai.dist * 1e3:.2f} mm, {geometry.energy or float('nan'):.0f} eV"
                + (", flipped (Dioptas)" if geometry.flip else "")
            )
        if self.curves:
            parts.append(f"{len(self.curves)} {self.calibrant.value} rings on the detector")
        if self.mask is not None:
            parts.append(f"{int(self.mask.sum())} pixels masked")
        self.status.object = " · ".join(parts)


def page(catalog=None, **options) -> DiffractionPage:
    """The diffraction page, inline in a notebook or served; `catalog`: see `app_state`."""
    return DiffractionPage(app_state(catalog, **options))
