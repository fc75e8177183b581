"""The live page's geometry panel: q-curves on the accumulated image and its azimuthal integration.

FemtoMAX users enter where the detector is and the photon energy (or load a
PONI file); the panel then draws the rings of a calibrant (LaB6 by default) or
of typed q values on the accumulated image, and integrates the accumulated
image azimuthally (`beamcat.analyses.azimuthal.integrate1d`, in q) every time
frames arrive. The energy defaults to the stream header's.

The geometry and its rings are computed in a worker thread when an input
changes (pyFAI's per-pixel maps take a while on a megapixel detector; they are
cached per geometry and shape, so later integrations are fast); integrations
run in a worker thread too, one at a time: frames that arrive meanwhile are
integrated by the next one (the latest image wins, none queue up).
"""

from __future__ import annotations

import asyncio

import holoviews as hv
import numpy as np
import panel as pn
import xarray as xr

from beamcat.analyses.azimuthal import integrate1d
from beamcat.analyses.geometry import Geometry, check_shape, read_poni
from beamcat.apps._banners import error_message
from beamcat.apps._plots import plot_pane
from beamcat.apps.diffraction_data import (
    CALIBRANTS,
    Q_VALUES,
    Curve,
    manual_geometry,
    parse_q_values,
    ring_curves,
    ring_table,
    with_energy,
)
from beamcat.apps.diffraction_plots import rings_element
from beamcat.apps.roi_editor import Report
from beamcat.figures.diffraction import pattern_hv

#: radial bins of the live integration
NPT = 1000
UNIT = "q_nm^-1"


class GeometryPanel(pn.viewable.Viewer):
    """Detector position and energy (or a PONI) -> q-curves and a live 1D integration.

    Parameters
    ----------
    report_error : callable (what, message or None)
        Where problems go (the page's red banner), under ``"geometry"`` and
        ``"integration"``.

    Attributes
    ----------
    geometry : Geometry or None
        The geometry the curves and the integration use (None: not entered yet).
    rings : Dataset or None
        The rings drawn (`beamcat.apps.diffraction_data.ring_table`).
    curves : list of Curve
        The same, one by one.
    overlay : holoviews.DynamicMap
        The rings as paths in detector pixels, to overlay on the image.
    pattern : Dataset (q) or None
        The last integration (``intensity``, ``count``).
    pattern_pane : panel.pane.HoloViews
    """

    def __init__(self, *, report_error: Report, **params):
        super().__init__(**params)
        self._report = report_error
        self.geometry: Geometry | None = None
        self.rings: xr.Dataset | None = None
        self.curves: list[Curve] = []
        self.pattern: xr.Dataset | None = None
        self.shape: tuple[int, int] | None = None
        self.header_energy: float | None = None
        self._entry_poni: str | None = None  # the PONI path the chosen entry filled in
        self._quiet = False  # widgets being set by the panel itself
        self._token = 0
        self._latest: tuple | None = None  # (image, invalid, title) last submitted
        self._drawn: tuple | None = None  # (that tuple, geometry) of the pattern shown
        self._integrating = False

        number = {"width": 120}
        self.distance = pn.widgets.FloatInput(label="Distance (mm)", value=None, start=0, **number)
        self.centre_x = pn.widgets.FloatInput(label="Beam centre x (px)", value=None, **number)
        self.centre_y = pn.widgets.FloatInput(label="Beam centre y (px)", value=None, **number)
        self.pixel = pn.widgets.FloatInput(label="Pixel (µm)", value=172.0, start=0, **number)
        self.energy = pn.widgets.FloatInput(
            label="Energy (eV)", value=None, start=0, placeholder="stream header's", **number
        )
        self.poni = pn.widgets.TextInput(
            label="or a PONI file", placeholder="/data/lab6.poni", width=260
        )
        self.flip = pn.widgets.Checkbox(label="PONI of the flipped image (Dioptas)", value=False)
        self.calibrant = pn.widgets.Select(
            label="q-curves", options=[*CALIBRANTS, Q_VALUES], value="LaB6", width=120
        )
        self.q_values = pn.widgets.TextInput(
            label="q values (nm⁻¹)", placeholder="15.1, 21.4", width=160
        )
        self._region: tuple | None = None  # of the image shown: the rings are clipped to it
        self._overlay_pipe = hv.streams.Pipe(data=([], None))
        self.overlay = hv.DynamicMap(
            lambda data: rings_element(*data), streams=[self._overlay_pipe]
        )
        self.pattern_pane = plot_pane(
            _empty_pattern("Azimuthal integration: enter a geometry"),
            css_classes=["beamcat-live-pattern"],
        )
        self.status = pn.pane.Markdown(
            "No geometry: enter the distance and beam centre, or a PONI file.",
            css_classes=["beamcat-live-geometry"],
        )
        inputs = (self.distance, self.centre_x, self.centre_y, self.pixel, self.energy)
        for widget in (*inputs, self.poni, self.flip, self.calibrant, self.q_values):
            widget.param.watch(self._changed, "value")
        self._layout = pn.Column(
            pn.pane.Markdown("**Geometry**"),
            pn.Row(*inputs),
            pn.Row(self.poni, self.flip, self.calibrant, self.q_values, align="end"),
            self.status,
        )

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ geometry

    def entered_geometry(self) -> Geometry | None:
        """The geometry the inputs describe: the PONI file if given, else the typed numbers.

        The energy typed (else the PONI's, else the stream header's) sets the
        wavelength. None when neither a PONI nor a distance is entered.

        Raises
        ------
        BeamcatError
            An unreadable PONI, a non-positive distance, pixel size or energy.
        """
        energy = self.energy.value or None
        path = self.poni.value.strip()
        if path:
            geometry = read_poni(path, flip=self.flip.value)
            if self.shape is not None:
                check_shape(geometry, self.shape, "the recording's frames")
            return with_energy(geometry, energy or geometry.energy or self.header_energy)
        if self.distance.value is None:
            return None
        x, y = self.centre_x.value, self.centre_y.value
        if self.shape is not None:  # default: the middle of the detector
            x = self.shape[1] / 2 if x is None else x
            y = self.shape[0] / 2 if y is None else y
        return manual_geometry(
            self.distance.value, x, y, self.pixel.value, energy or self.header_energy
        )

    def set_shape(self, shape: tuple[int, int]) -> None:
        """The detector's frame shape (the curves are drawn for it)."""
        if tuple(shape) != self.shape:
            self.shape = tuple(int(n) for n in shape)
            self._changed()

    async def follow_entry(self, shape: tuple[int, int], poni: tuple[str, bool] | None) -> None:
        """A recording was chosen: its frame shape, and the PONI (path, flip) it carries.

        The entry's PONI fills the PONI input; a PONI typed by the user is kept,
        one that came from another entry is replaced (or cleared, when this
        entry has none). Then the geometry and its rings are computed again.
        """
        self.shape = tuple(int(n) for n in shape)
        typed = self.poni.value.strip()
        self._quiet = True  # one update below, not one per widget
        try:
            if not typed or typed == self._entry_poni:
                self._entry_poni = poni[0] if poni is not None else None
                if poni is not None:
                    self.flip.value = poni[1]
                self.poni.value = self._entry_poni or ""
        finally:
            self._quiet = False
        await self.update()

    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The part of the image shown, ``(x, y, w, h)`` (None: all): rings are clipped to it."""
        if region != self._region:
            self._region = region
            self._overlay_pipe.send((self.curves, region))

    def set_header_energy(self, energy: float | None) -> None:
        """The stream header's energy (eV): used when none is typed."""
        if energy != self.header_energy:
            self.header_energy = energy
            if not self.energy.value:
                self._changed()

    def _changed(self, *_) -> None:
        if not self._quiet:
            pn.state.execute(self.update)

    async def update(self) -> None:
        """Recompute the geometry and its rings (in a worker thread); the latest input wins."""
        token = self._token = self._token + 1
        shape = self.shape
        try:
            geometry = self.entered_geometry()
            calibrant = self.calibrant.value
            q = parse_q_values(self.q_values.value) if calibrant == Q_VALUES else ()
            table = None
            if _usable(geometry) and shape is not None:
                table = await asyncio.to_thread(
                    ring_table, geometry, shape, calibrant=calibrant, q_values=q
                )
        except Exception as err:  # a bad input: shown, the page keeps working
            if token == self._token:
                self._report("geometry", error_message(err))
                self.status.object = "Geometry not usable: see the message above."
            return
        if token != self._token:
            return  # superseded by a later input
        self._report("geometry", None)
        self.geometry, self.rings, self.curves = geometry, table, ring_curves(table)
        self._overlay_pipe.send((self.curves, self._region))
        if not _usable(geometry):
            self.pattern = self._drawn = None
            what = "a geometry" if geometry is None else "the energy"
            self.pattern_pane.object = _empty_pattern(f"Azimuthal integration: enter {what}")
            if geometry is not None:
                self.status.object = "No energy yet: type it, or replay (the stream header has it)."
            return
        config = geometry.integrator
        self.status.object = (
            f"distance {config.dist * 1e3:.2f} mm · PONI ({config.poni2 * 1e3:.2f}, "
            f"{config.poni1 * 1e3:.2f}) mm · {geometry.energy:.0f} eV · "
            f"{len(self.curves)} rings on the detector"
        )
        if not self._integrating:
            await self._integrate()  # the latest image, with the new geometry

    # ------------------------------------------------------------------ integration

    def submit(self, image: np.ndarray, invalid: np.ndarray | None, title: str) -> None:
        """Integrate `image` (y, x) in a worker thread, then draw it (`invalid` pixels left out).

        An integration already running is not interrupted: the latest image
        submitted meanwhile is integrated after it. The image is kept: a new
        geometry integrates it again.
        """
        self._latest = (image, invalid, title)
        if not self._integrating and _usable(self.geometry):
            pn.state.execute(self._integrate)

    def integrate(
        self, image: np.ndarray, invalid: np.ndarray | None, geometry: Geometry | None = None
    ) -> xr.Dataset:
        """The azimuthal integration of `image` in q (nm^-1), `invalid` pixels masked.

        `geometry` defaults to the panel's.
        """
        frames = xr.DataArray(np.asarray(image, dtype=np.float64), dims=("y", "x"))
        geometry = geometry or self.geometry
        return integrate1d(frames, geometry, npt=NPT, unit=UNIT, mask=invalid).compute()

    async def _integrate(self) -> None:
        """Integrate the latest image with the current geometry until both are drawn."""
        self._integrating = True
        try:
            while _usable(self.geometry) and self._latest is not None:
                job, geometry = self._latest, self.geometry
                if self._drawn is not None and self._drawn[0] is job and self._drawn[1] == geometry:
                    return
                image, invalid, title = job
                try:
                    pattern = await asyncio.to_thread(self.integrate, image, invalid, geometry)
                except Exception as err:  # shown, the live view goes on
                    self._drawn = (job, geometry)
                    self._report("integration", error_message(err))
                    return
                if geometry != self.geometry:
                    continue  # changed meanwhile: integrate again with the new one
                self._drawn = (job, geometry)
                self._report("integration", None)
                self.pattern = pattern
                self.pattern_pane.object = pattern_hv(pattern, rings=self.rings).opts(
                    title=f"Azimuthal integration: {title}", width=640, height=280
                )
        finally:
            self._integrating = False


def _usable(geometry: Geometry | None) -> bool:
    """A geometry with a wavelength: it has q-curves and integrates in q."""
    return geometry is not None and geometry.wavelength is not None


def _empty_pattern(title: str) -> hv.Curve:
    return hv.Curve([], "q", "intensity").opts(title=title, width=640, height=280)
