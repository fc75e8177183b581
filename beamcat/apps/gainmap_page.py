"""The gain-map page: detector positions and their PONIs in, the gain map, its checks out.

Choose the entries of amorphous-scatterer images, one per detector (or beam
stop) position; each comes with the PONI its catalog entry carries (``poni=``),
which can be replaced by typing a path in the table. "Compute" runs
`beamcat.analyses.gainmap.gain_map` (the frames averaged per position, radial
median profiles, the flat window, per-position gains, their median, damaged
pixels, the median filter) and `position_spread` before and after the correction,
in a worker thread under a spinner. The page then shows:

- each position's radial profile, its continuation and the flat window: the
  window is found automatically, or set with the slider or by selecting a 2θ
  range on the plot (the box-select tool: drag along the 2θ axis); the next
  "Compute" uses it;
- the combined gain map with the damaged pixels circled, and its histogram
  with the damaged threshold;
- the positions' 1D patterns before and after the correction, and their spread
  (the seed's first figure), with the RMS spreads in the status line.

The figures are the `beamcat.figures.gainmap` twins. A bad choice (fewer than
2 positions, a PONI of another detector, a flat window outside the range all
positions measured) shows an alert and leaves the page working.

Examples
--------
>>> from beamcat.apps import gainmap_page
>>> page = gainmap_page.page()  # the demo catalog, inline in a notebook  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import holoviews as hv
import pandas as pd
import panel as pn
import xarray as xr
from bokeh.palettes import Category10_10

from beamcat.analyses.gainmap import gain_map, position_spread
from beamcat.apps._banners import Banners
from beamcat.apps._jobs import Jobs
from beamcat.apps._plots import plot_pane
from beamcat.apps.state import AppState, CatalogContext, app_state
from beamcat.errors import OptionError
from beamcat.figures.gainmap import gain_map_hv, position_spread_hv, profiles_hv
from beamcat.workflows.calibration_entries import EntryInfo

#: position colours (bokeh's: the figures' default names are matplotlib's)
COLOURS = Category10_10
#: the flat window's slider before the first map (deg)
WINDOW_START = (0.0, 30.0)


def position_groups(
    context: CatalogContext, infos: Mapping[str, EntryInfo]
) -> dict[str, list[str]]:
    """Entries of images with a PONI, grouped by their name without its trailing number.

    ``gainmap_pos1`` ... ``gainmap_pos5`` make the group ``gainmap_pos``; groups
    of at least two entries, largest first (the likely positions of one map).
    """
    names = [
        n
        for n, info in infos.items()
        if info.dims[-2:] == ("y", "x") and context.rows[n]["options"].get("poni")
    ]
    stems = {n: re.sub(r"\d+$", "", n) for n in names}
    sizes = Counter(stems.values())
    groups: dict[str, list[str]] = {}
    for stem, _ in sizes.most_common():
        if sizes[stem] >= 2:
            groups[stem] = [n for n in names if stems[n] == stem]
    return groups


def compute(
    context: CatalogContext, positions: pd.DataFrame, **options
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """The gain map of the positions and their spread before and after it.

    Parameters
    ----------
    context : CatalogContext
    positions : DataFrame
        Columns ``entry`` and ``poni`` (path), one row per position.
    **options
        For `gain_map` (``flat_range``, ``polarization_factor``, ``solid_angle``,
        ``median_window``, ``damaged_nsigma``).

    Returns
    -------
    gain, before, after : Dataset
        `gain_map`'s result and `position_spread` without and with it (the same
        beam-stop shadows).
    """
    if len(positions) < 2:
        raise OptionError(f"a gain map needs 2 positions or more (3 advised), got {len(positions)}")
    images = [context.open(name) for name in positions["entry"]]
    ponis = [str(p) for p in positions["poni"]]
    gm = gain_map(images, ponis, **options)
    spread = {k: options[k] for k in ("polarization_factor", "solid_angle") if k in options} | {
        "beamstop": gm["beamstop"].values
    }
    before = position_spread(images, ponis, **spread)
    after = position_spread(images, ponis, gm, **spread)
    return gm, before, after


class GainmapPage(pn.viewable.Viewer):
    """Positions and their PONIs, the flat window, the gain map, before/after patterns.

    Parameters
    ----------
    state : AppState
        The session's state.

    Attributes
    ----------
    gain : Dataset or None
        The last `gain_map` result.
    before, after : Dataset or None
        `position_spread` without and with it.
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        self.gain: xr.Dataset | None = None
        self.before: xr.Dataset | None = None
        self.after: xr.Dataset | None = None
        self.banners = Banners()
        self.jobs = Jobs(self.banners.set_error)
        self.groups: dict[str, list[str]] = {}

        self.entries = pn.widgets.MultiChoice(label="Positions (entries)", width=520)
        self.table = pn.widgets.Tabulator(
            pd.DataFrame({"entry": [], "poni": []}, dtype=object),  # text columns
            show_index=False,
            editors={"entry": None},
            layout="fit_data_stretch",
            width=760,
            css_classes=["beamcat-gainmap-positions"],
        )
        self.auto_window = pn.widgets.Checkbox(label="Flat window found automatically", value=True)
        self.window = pn.widgets.RangeSlider(
            name="Flat window 2θ (deg)",
            start=WINDOW_START[0],
            end=WINDOW_START[1],
            value=WINDOW_START,
            step=0.05,
            width=300,
            disabled=True,
        )
        self.polarization = pn.widgets.FloatInput(
            label="Polarisation factor", value=0.99, start=-1, end=1, width=130
        )
        self.solid_angle = pn.widgets.Checkbox(label="Solid angle out first", value=True)
        self.median_window = pn.widgets.IntInput(
            label="Median filter (px)", value=3, start=1, width=120
        )
        self.nsigma = pn.widgets.FloatInput(label="Damaged: n σ", value=4.0, start=0.5, width=110)
        self.compute_button = pn.widgets.Button(label="Compute", button_type="primary", width=110)
        self.status = pn.pane.Markdown(
            "Choose the positions, then Compute.", css_classes=["beamcat-gainmap-status"]
        )
        self._window_pipe = hv.streams.Pipe(data=None)
        self._chosen_window = hv.DynamicMap(_window_element, streams=[self._window_pipe])
        self._bounds: hv.streams.BoundsX | None = None
        self.profiles_pane = plot_pane(
            hv.Curve([]).opts(title="Radial profiles: press Compute"),
            css_classes=["beamcat-gainmap-profiles"],
        )
        self.map_pane = plot_pane(hv.Image([]).opts(title="Gain map"), sizing_mode="stretch_width")
        self.spread_pane = plot_pane(
            hv.Curve([]).opts(title="Before / after"), sizing_mode="stretch_width"
        )

        self._layout = pn.Column(
            self.banners.alert,
            pn.Row(self.entries, self.compute_button, align="end"),
            self.table,
            pn.Row(
                self.auto_window,
                self.window,
                self.polarization,
                self.solid_angle,
                self.median_window,
                self.nsigma,
                align="end",
            ),
            self.status,
            self.profiles_pane,
            pn.Row(self.map_pane, self.spread_pane),
            sizing_mode="stretch_width",
        )
        self.entries.param.watch(self._on_entries, "value")
        self.auto_window.param.watch(self._on_auto, "value")
        self.window.param.watch(self._on_window, "value")
        self.compute_button.on_click(lambda *_: pn.state.execute(self.compute))
        pn.state.onload(self._fill_entries)

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ positions

    async def _fill_entries(self) -> None:
        """Offer the image entries with a PONI; choose the largest group of numbered ones."""
        context = self.state.context
        infos = await self.jobs.entry_infos(context, self._layout)
        if infos is None:
            return
        self.groups = position_groups(context, infos)
        self.entries.options = [n for names in self.groups.values() for n in names]
        self.entries.value = next(iter(self.groups.values()), [])
        if not self.groups:
            self.status.object = (
                "No positions in this catalog: a gain map needs image entries with a PONI (poni=)."
            )

    def _on_entries(self, event) -> None:
        """The table follows the chosen entries; a PONI typed for an entry is kept."""
        typed = dict(zip(self.table.value["entry"], self.table.value["poni"], strict=True))
        context = self.state.context  # opened already (headers): their PONI is absolute
        ponis = [typed.get(n) or str(context.open(n).attrs.get("poni", "")) for n in event.new]
        self.table.value = pd.DataFrame({"entry": list(event.new), "poni": ponis})

    def _on_auto(self, event) -> None:
        self.window.disabled = event.new
        self._window_pipe.send(None if event.new else self.window.value)

    def _on_window(self, event) -> None:
        """Draw the window chosen by hand (none while it is found automatically)."""
        self._window_pipe.send(None if self.auto_window.value else event.new)

    def _on_bounds(self, boundsx=None, **_) -> None:
        """A 2θ range selected on the profiles: the flat window of the next Compute."""
        if boundsx is None:
            return
        lo, hi = sorted(float(v) for v in boundsx)
        self.auto_window.value = False
        self.window.value = (max(lo, self.window.start), min(hi, self.window.end))

    # ------------------------------------------------------------------ work

    def options(self) -> dict:
        """`gain_map` options from the widgets."""
        return {
            "flat_range": None if self.auto_window.value else tuple(self.window.value),
            "polarization_factor": self.polarization.value,
            "solid_angle": self.solid_angle.value,
            "median_window": self.median_window.value,
            "damaged_nsigma": self.nsigma.value,
        }

    async def compute(self) -> None:
        """Compute the map and the before/after check in a worker thread, then draw them."""
        context, positions, options = self.state.context, self.table.value.copy(), self.options()
        self.status.object = f"Computing the gain map of {len(positions)} positions…"
        ok, result = await self.jobs.run(
            "gain map", lambda: compute(context, positions, **options), self._layout
        )
        if ok is None:
            return
        if not ok:
            self.status.object = "No gain map: see the message above."
            return
        self.gain, self.before, self.after = result
        self._draw()

    def _draw(self) -> None:
        gm, before, after = self.gain, self.before, self.after
        lo, hi = gm.attrs["common_range"]
        window = gm.attrs["flat_range"]
        self.window.start, self.window.end = float(lo), float(hi)
        if self.auto_window.value:
            self.window.value = (float(window[0]), float(window[1]))
        profiles = profiles_hv(gm, colours=COLOURS)
        first = profiles.get(0).opts(tools=["xbox_select"])  # selecting along 2θ: BoundsX
        self._bounds = hv.streams.BoundsX(source=first, boundsx=None)
        self._bounds.add_subscriber(self._on_bounds)
        self.profiles_pane.object = (profiles * self._chosen_window).opts(
            title=f"Radial profiles · flat window {window[0]:.2f}–{window[1]:.2f}°",
            responsive=True,
            height=320,
            active_tools=["xbox_select"],
        )
        layout = gain_map_hv(gm)
        layout.values()[0].opts(title="Gain map (damaged pixels circled)", min_height=300)
        self.map_pane.object = layout
        self.spread_pane.object = position_spread_hv(before, after, colours=COLOURS)
        spread = float(before["rms_spread"]), float(after["rms_spread"])
        self.status.object = (
            f"**Gain map of {gm.sizes['position']} positions** · "
            f"{int(gm['valid'].sum())} pixels measured, {int(gm['damaged'].sum())} damaged · "
            f"position spread {spread[0]:.2%} before, {spread[1]:.2%} after "
            f"({spread[0] / spread[1]:.1f}x less)"
        )


def _window_element(data) -> hv.VSpan:
    """The flat window chosen for the next Compute (orange), none while automatic."""
    lo, hi = data if data is not None else (None, None)
    return hv.VSpan(lo, hi).opts(color="orange", alpha=0.25)


def page(catalog=None, **options) -> GainmapPage:
    """The gain-map page, inline in a notebook or served; `catalog`: see `app_state`."""
    return GainmapPage(app_state(catalog, **options))
