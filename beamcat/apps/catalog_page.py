"""The catalog browser page: a table of entries and the selected entry's quick look."""

from __future__ import annotations

import asyncio
import html
import math
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from beamcat.apps._banners import error_message
from beamcat.apps._plots import plot_pane
from beamcat.apps.quicklook import plot_quicklook, quicklook
from beamcat.apps.state import AppState, app_state
from beamcat.catalog.build import METADATA_KEYS

#: table columns, in order: what a user recognises an entry by first (``source`` is hidden
#: but kept for the attrs view)
COLUMNS = ("name", "format", *METADATA_KEYS, "dims", "shape", "size", "error", "source")
#: rows shown at once; a longer catalog is paginated (page buttons under the table)
PAGE_SIZE = 25
_PENDING = "…"
_ATTRS_CSS = """
table {table-layout: fixed; width: 100%; border-collapse: collapse; font-size: 0.85em}
th, td {text-align: left; vertical-align: top; padding: 2px 6px; border-bottom: 1px solid #ddd}
td {overflow-wrap: anywhere}
"""


class CatalogPage(pn.viewable.Viewer):
    """Table of a catalog's entries; selecting one shows its quick look and attrs.

    Parameters
    ----------
    state : AppState
        The session's state; ``state.entry`` follows the table selection (and a
        change of ``state.entry`` from another page shows that entry here).
    """

    def __init__(self, state: AppState, **params):
        super().__init__(**params)
        self.state = state
        context = state.context
        self._rows = pd.DataFrame(
            [
                {
                    "name": name,
                    "format": row["format"],
                    **dict.fromkeys(("dims", "shape"), _PENDING),
                    "size": math.nan,
                    "error": "",
                    **{key: str(row["metadata"].get(key, "")) for key in METADATA_KEYS},
                    "source": str(row["source"]),
                }
                for name, row in context.rows.items()
            ],
            columns=list(COLUMNS),
        )
        # filtered here rather than by Tabulator header filters, whose row indices Panel
        # does not map back for selections
        self.search = pn.widgets.TextInput(
            placeholder="Filter entries: name, format, instrument, sample, run …",
            sizing_mode="stretch_width",
        )
        self.table = pn.widgets.Tabulator(
            self._rows,
            selectable=1,
            disabled=True,
            show_index=False,
            hidden_columns=["source"],
            # every row, or pages of PAGE_SIZE rows; every column within the page's width
            # (long text is cut, its tooltip shows it whole)
            pagination="local" if len(self._rows) > PAGE_SIZE else None,
            page_size=PAGE_SIZE,
            layout="fit_columns",
            # dims/shape/size arrive after the first render: size their columns up front
            widths={"name": 140, "format": 100, "instrument": 120, "sample": 140, "run": 80}
            | {"description": 180, "dims": 100, "shape": 100, "size": 70},
            formatters={"size": NumberFormatter(format="0.0 b", nan_format="")},  # KiB, MiB
            configuration={"columnDefaults": {"tooltip": True}},
            sizing_mode="stretch_width",
            css_classes=["beamcat-catalog-table"],
        )
        self.title = pn.pane.Markdown("Select an entry to see its quick look.")
        # images are at most 480 px wide plus axes and colour bar (plot_quicklook)
        self.plot = pn.Column(sizing_mode="stretch_width", min_height=300, min_width=680)
        self.attrs = pn.pane.HTML(
            width=360,
            css_classes=["beamcat-attrs"],
            stylesheets=[_ATTRS_CSS],
        )
        attrs_box = pn.Column(self.attrs, scroll=True, width=380, height=480)
        self.quicklook = pn.Column(
            self.title,
            pn.Row(self.plot, attrs_box, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            css_classes=["beamcat-quicklook"],
        )
        self._layout = pn.Column(
            self.search, self.table, self.quicklook, sizing_mode="stretch_width"
        )
        self.search.param.watch(self._show_rows, "value_input")
        self.table.param.watch(self._on_selection, "selection")
        state.param.watch(self._show_entry, "entry")
        pn.state.onload(self._fill_summaries)

    def __panel__(self):
        return self._layout

    async def _fill_summaries(self) -> None:
        """Open every entry (headers only) off the event loop and fill dims/shape/size."""
        context = self.state.context
        self.table.loading = True
        try:
            rows = await asyncio.to_thread(lambda: [context.summary(n) for n in context.names])
        finally:
            self.table.loading = False
        self._rows = pd.DataFrame(rows, columns=list(COLUMNS))
        self._show_rows()

    def _show_rows(self, *_) -> None:
        """Show the rows matching the filter text, keeping the selected entry selected."""
        text = (self.search.value_input or "").strip().lower()
        rows = self._rows
        if text:
            searched = rows[[c for c in COLUMNS if c not in ("size", "source")]]
            cells = searched.astype(str).agg(" | ".join, axis=1).str.lower()
            rows = rows[cells.str.contains(text, regex=False)]
        self.table.value = rows.reset_index(drop=True)
        self._select_row(self.state.entry)

    def _select_row(self, name: str | None) -> None:
        shown = self.table.value["name"].tolist()
        self.table.selection = [shown.index(name)] if name in shown else []

    def _on_selection(self, event) -> None:
        if event.new:
            self.state.entry = self.table.value["name"].iloc[event.new[0]]

    async def _show_entry(self, event) -> None:
        name = event.new
        self._select_row(name)  # when another page chose the entry
        if name is None:
            return
        self.title.object = f"### {name}"
        self.quicklook.loading = True
        try:
            result = await asyncio.to_thread(self._compute, name)
        finally:
            self.quicklook.loading = False
        if self.state.entry == name:  # a later selection may have finished first
            self._render(name, *result)

    def _compute(self, name: str) -> tuple[Any, dict[str, Any]]:
        """(HoloViews plot or error text, attrs) of an entry; runs in a worker thread."""
        row = self.state.context.rows[name]
        metadata = {k: v for k, v in row["metadata"].items() if v not in (None, "")}
        try:
            ql = quicklook(self.state.context.open(name))
            return plot_quicklook(ql), {**ql.attrs, **metadata}
        except Exception as err:  # shown as an alert: a bad entry never breaks the page
            return error_message(err), {"source": row["source"], **metadata}

    def _render(self, name: str, plot: Any, attrs: dict[str, Any]) -> None:
        if isinstance(plot, str):
            self.plot.objects = [pn.pane.Alert(plot, alert_type="danger")]
        else:
            # sized by the plot itself, so images keep their aspect and colour bar
            self.plot.objects = [plot_pane(plot)]
        self.attrs.object = attrs_html(attrs)


def attrs_html(attrs: dict[str, Any], *, max_chars: int = 200) -> str:
    """A two-column HTML table of attrs, escaped, long values cut to `max_chars`."""
    rows = []
    for key, value in attrs.items():
        text = str(value)
        if len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return f"<table><tr><th>attribute</th><th>value</th></tr>{''.join(rows)}</table>"


def page(catalog=None, **options) -> CatalogPage:
    """The catalog page, inline in a notebook or served; `catalog`: see `app_state`."""
    return CatalogPage(app_state(catalog, **options))
