"""Rectangular ROIs drawn with the mouse on an image and listed in a table, kept in sync.

Shared by the pages that measure ROIs (radiography, live). On the image, bokeh's
box-edit tool draws a box (shift + drag), moves one (drag) and deletes one (tap,
then Backspace); dragging an edge or a corner of a box resizes it (each box
carries an editable bokeh ``BoxAnnotation`` that is resizable but not movable, so
drags inside it still reach the box-edit tool). Boxes snap to pixel edges and are
clipped to the image. The table beside it lists name, x, y, w, h (``Rect``: pixels
``[y:y+h, x:x+w]``); editing a number resizes the ROI, the ✕ button deletes it. ROI sets are saved
and loaded as JSON (or CSV) with `beamcat.analyses.roi.save_rois`/`load_rois`.

A page overlays `RoiEditor.boxes` and `RoiEditor.labels` on its image, shows the
editor (its table and buttons) beside it and watches ``editor.param.rois``.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import param
from bokeh.models import BoxAnnotation
from bokeh.palettes import Category10_10

from beamcat.apps._banners import Banner, error_message
from beamcat.errors import BeamcatError
from beamcat.rois import Rect, load_rois, save_rois

ROI_COLUMNS = ("name", "x", "y", "w", "h")
#: a resize is adopted once its edges have been still this long (a drag moves them often)
RESIZE_SETTLE_S = 0.3
_BOX_COLUMNS = ("name", "x0", "y0", "x1", "y1")

#: reports a message (None clears it) of one part ("table", "file") of the editor
Report = Callable[[str, str | None], None]


def rois_frame(rois: Mapping[str, Rect]) -> pd.DataFrame:
    """The ROI table: one row per ROI, columns name, x, y, w, h (integers)."""
    rows = [(n, *(int(v) for v in r)) for n, r in rois.items()]
    return pd.DataFrame(rows, columns=list(ROI_COLUMNS)).astype(
        {c: "int64" for c in ROI_COLUMNS[1:]}
    )


def rois_from_frame(table: pd.DataFrame) -> tuple[dict[str, Rect], list[str]]:
    """ROIs of the table's valid rows, and a message per invalid row (1-based)."""
    rois, errors = {}, []
    for i, row in enumerate(table.itertuples(index=False), start=1):
        name = str(row.name).strip() if row.name is not None else ""
        try:
            rect = Rect(*(int(round(float(getattr(row, k)))) for k in "xywh"))
        except (TypeError, ValueError):
            errors.append(f"ROI table row {i} ({name!r}): x, y, w, h must be numbers")
            continue
        if not name or name in rois:
            errors.append(f"ROI table row {i}: name {name!r} is empty or used twice")
        elif rect.w <= 0 or rect.h <= 0:
            errors.append(f"ROI {name!r}: w and h must be > 0, got w={rect.w}, h={rect.h}")
        else:
            rois[name] = rect
    return rois, errors


def new_name(taken) -> str:
    """``"ROI k"`` with the smallest k not in `taken`."""
    k = 1
    while f"ROI {k}" in taken:
        k += 1
    return f"ROI {k}"


def rois_from_boxes(data: Mapping[str, list], shape: tuple[int, int] | None) -> dict[str, Rect]:
    """ROIs from the box-edit stream's data, snapped to pixel edges and clipped to the image.

    Parameters
    ----------
    data : mapping
        Columns ``x0, y0, x1, y1`` (box corners in pixel-edge coordinates: pixel
        column i spans x from i to i + 1, in either order) and ``name`` (None or
        empty for boxes just drawn, which are named ``"ROI k"``).
    shape : (ny, nx) or None
        Image shape to clip to.

    Returns
    -------
    dict name -> Rect
        In box order; boxes left without a pixel after clipping are dropped.
    """
    corners = list(zip(*(data.get(k, []) for k in ("x0", "y0", "x1", "y1")), strict=True))
    names = list(data.get("name") or [None] * len(corners))
    boxes = []
    for (x0, y0, x1, y1), name in zip(corners, names, strict=True):
        xa, xb = sorted((round(float(x0)), round(float(x1))))
        ya, yb = sorted((round(float(y0)), round(float(y1))))
        if shape is not None:
            xa, xb = (min(max(v, 0), shape[1]) for v in (xa, xb))
            ya, yb = (min(max(v, 0), shape[0]) for v in (ya, yb))
        if xb > xa and yb > ya:
            boxes.append((name, Rect(xa, ya, xb - xa, yb - ya)))
    named = [n for n, _ in boxes if isinstance(n, str) and n not in ("", "nan")]
    kept = {n for n in named if named.count(n) == 1}
    rois: dict[str, Rect] = {}
    for name, rect in boxes:
        rois[name if name in kept else new_name(kept | set(rois))] = rect
    return rois


class RoiEditor(pn.viewable.Viewer):
    """A ROI set edited with the box-edit tool on an image and in a table.

    Parameters
    ----------
    report_error, report_note : callable (what, message or None), optional
        Where the editor's errors (bad table rows, unreadable ROI files) and
        notes (skipped mask ROIs) go, usually the page's alerts; by default its
        own alert.
    width : int
        Width of the table column in px.

    Attributes
    ----------
    rois : dict name -> Rect
        The ROI set (a param: watch ``editor.param.rois``).
    shape : (ny, nx) or None
        The image's shape: boxes are clipped to it and new ROIs centred in it.
    boxes, labels : holoviews.DynamicMap
        The ROI rectangles (the source of the box-edit stream `box_stream`) and
        their names, to overlay on the page's image.
    table : panel.widgets.Tabulator
    """

    rois = param.Dict(default={}, doc="ROI name -> Rect")

    def __init__(
        self,
        *,
        report_error: Report | None = None,
        report_note: Report | None = None,
        width: int = 340,
        **params,
    ):
        super().__init__(**params)
        self.shape: tuple[int, int] | None = None
        self._banner = Banner("danger", "beamcat-roi-errors")
        self.alert = self._banner.pane
        self._report_error = report_error or self._banner.set
        self._report_note = report_note or self._banner.set
        self._syncing = False
        # resize handles: per bokeh figure, one BoxAnnotation per ROI name
        self._handles: dict[str, dict[str, BoxAnnotation]] = {}
        self._placing = False  # `_resize_handles` is putting handles on their boxes
        self._resized: dict[str, BoxAnnotation] = {}
        self._last_resize = 0.0
        self._resize_timer = None

        self._pipe = hv.streams.Pipe(data=[])
        self.boxes = hv.DynamicMap(self._boxes_element, streams=[self._pipe])
        self.labels = hv.DynamicMap(self._labels_element, streams=[self._pipe])
        self.box_stream = hv.streams.BoxEdit(source=self.boxes, empty_value=None)
        self.box_stream.add_subscriber(self._on_boxes)
        self.table = pn.widgets.Tabulator(
            rois_frame({}),
            show_index=False,
            buttons={"delete": "✕"},
            layout="fit_data_stretch",
            height=200,
            width=width - 10,
            css_classes=["beamcat-roi-table"],
        )
        self.table.param.watch(self._on_table, "value")
        self.table.on_edit(self._on_table)
        self.table.on_click(self.on_table_click, column="delete")
        self.add_roi = pn.widgets.Button(label="Add ROI", width=100)
        self.add_roi.on_click(self._on_add_roi)
        self.download = pn.widgets.FileDownload(
            callback=self.roi_file,
            filename="rois.json",
            label="Save ROIs",
            width=110,
            disabled=True,
        )
        self.upload = pn.widgets.FileInput(accept=".json,.csv", width=210)
        self.upload.param.watch(self._on_upload, "value")
        self._layout = pn.Column(
            pn.pane.Markdown(
                "**ROIs** — box tool: shift + drag draws, drag moves, dragging an edge "
                "or a corner resizes, tap + Backspace deletes; or edit the numbers."
            ),
            self.alert,
            self.table,
            pn.Row(self.add_roi, self.download),
            self.upload,
            width=width,
        )

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ the set

    def set_rois(self, rois: Mapping[str, Rect], *, table: bool = True) -> None:
        """Make `rois` the ROI set: the table and the boxes follow.

        Parameters
        ----------
        rois : mapping name -> Rect or (x, y, w, h)
        table : bool
            Rewrite the table (False keeps rows as the user typed them).
        """
        rois = {str(n): Rect(*(int(v) for v in r)) for n, r in rois.items()}
        changed = rois != self.rois
        if table:
            self._syncing = True
            try:
                self.table.value = rois_frame(rois)
            finally:
                self._syncing = False
        self.download.disabled = not rois
        if changed:
            self._pipe.send(self.box_rows(rois))
            self.rois = rois  # watchers run last, with the boxes drawn

    def color(self, name: str) -> str:
        """The colour of ROI `name` (its box, and its curves on the pages); gray if unknown."""
        names = list(self.rois)
        return Category10_10[names.index(name) % 10] if name in names else "gray"

    def box_rows(self, rois: Mapping[str, Rect] | None = None) -> list[tuple]:
        """Rectangles (x0, y0, x1, y1, name, color) of the ROIs, in pixel-edge coordinates."""
        rois = self.rois if rois is None else rois
        return [
            (r.x, r.y, r.x + r.w, r.y + r.h, name, Category10_10[i % 10])
            for i, (name, r) in enumerate(rois.items())
        ]

    def redraw(self) -> None:
        """Draw the boxes again (after the page replaced the image under them)."""
        self._pipe.send(self.box_rows())

    # ------------------------------------------------------------------ edits

    def _on_boxes(self, data=None, **_) -> None:
        """The box-edit tool changed the boxes: adopt them (snapped to pixels) as the ROI set."""
        data = data or {}
        rois = rois_from_boxes(data, self.shape)
        drawn = list(zip(*(data.get(k, []) for k in ("x0", "y0", "x1", "y1", "name")), strict=True))
        changed = rois != self.rois
        self.set_rois(rois)  # redraws the boxes when the ROIs changed
        if not changed and drawn != [row[:5] for row in self.box_rows()]:
            self.redraw()  # snapped, clipped or named boxes

    def _on_table(self, *_) -> None:
        """The table was edited: adopt its valid rows, leaving the rows as typed."""
        if self._syncing:
            return
        rois, errors = rois_from_frame(self.table.value)
        self._report_error("table", "\n\n".join(errors) or None)
        self.set_rois(rois, table=not errors)

    def on_table_click(self, event) -> None:
        """A click in the table's ✕ column: delete that row's ROI."""
        name = self.table.value["name"].iloc[event.row]
        self.set_rois({n: r for n, r in self.rois.items() if n != name})

    def _on_add_roi(self, *_) -> None:
        ny, nx = self.shape or (64, 64)
        w, h = max(1, nx // 8), max(1, ny // 8)
        box = Rect(nx // 2 - w // 2, ny // 2 - h // 2, w, h)
        self.set_rois({**self.rois, new_name(self.rois): box})

    # ------------------------------------------------------------------ files

    def roi_file(self) -> io.BytesIO:
        """The ROI set as JSON (`save_rois`), for the download button."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = save_rois(self.rois, Path(tmp) / "rois.json")
            except BeamcatError as err:
                self._report_error("file", error_message(err))
                return io.BytesIO(b"")
            return io.BytesIO(path.read_bytes())

    def _on_upload(self, event) -> None:
        if not event.new:
            return
        name = Path(self.upload.filename or "rois.json").name
        suffix = ".csv" if name.lower().endswith(".csv") else ".json"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{Path(name).stem}{suffix}"
            path.write_bytes(event.new)
            self.load_file(path, label=name)

    def load_file(self, path: str | Path, *, label: str | None = None) -> None:
        """Replace the ROI set by the rectangles of a ROI file (`load_rois`); masks are skipped."""
        try:
            loaded = load_rois(path)
        except BeamcatError as err:
            self._report_error("file", error_message(err).replace(str(path), label or str(path)))
            return
        masks = [n for n, r in loaded.items() if not isinstance(r, Rect)]
        self._report_error("file", None)
        self._report_note(
            "file",
            f"{label or path}: mask ROIs {masks} cannot be drawn here and were skipped"
            if masks
            else None,
        )
        self.set_rois({n: r for n, r in loaded.items() if isinstance(r, Rect)})

    # ------------------------------------------------------------------ elements

    def _boxes_element(self, data):
        return hv.Rectangles(data or [], vdims=["name", "color"]).opts(
            fill_color="color",
            fill_alpha=0.12,
            line_color="color",
            line_width=2,
            hooks=[self._resize_handles],
        )

    # ------------------------------------------------------------------ resizing

    def _resize_handles(self, plot, element) -> None:
        """HoloViews hook: one resizable BoxAnnotation on each ROI box of the figure.

        Called whenever the boxes are drawn, so the handles follow every change
        of the ROI set (drawn, moved, typed, loaded).
        """
        figure = plot.state
        handles = self._handles.setdefault(figure.id, {})
        boxes = {
            name: box
            for name, *box in zip(*(element.dimension_values(k) for k in _BOX_COLUMNS), strict=True)
        }
        for name in set(handles) - set(boxes):
            handles[name].visible = False  # kept for a ROI of that name again
        for name, (x0, y0, x1, y1) in boxes.items():
            if name not in handles:
                handle = BoxAnnotation(
                    editable=True,
                    movable="none",
                    resizable="all",
                    fill_alpha=0.0,
                    line_alpha=0.0,
                    name=f"resize {name}",
                )
                for edge in ("left", "right", "top", "bottom"):
                    handle.on_change(edge, self._resize_callback(name, handle))
                figure.add_layout(handle)
                handles[name] = handle
            self._placing = True  # each edge set calls the callback: not a drag
            try:
                handles[name].update(left=x0, right=x1, top=y0, bottom=y1, visible=True)
            finally:
                self._placing = False

    def _resize_callback(self, name: str, handle: BoxAnnotation):
        def resized(attr, old, new) -> None:
            if self._placing:
                return
            self._resized[name] = handle
            self._last_resize = time.monotonic()
            if self._resize_timer is None and handle.document is not None:
                delay = int(RESIZE_SETTLE_S * 1000)
                self._resize_timer = handle.document.add_timeout_callback(self._settle, delay)

        return resized

    def _settle(self) -> None:
        """Adopt the dragged handles' edges once they stop moving (wait again if not)."""
        self._resize_timer = None
        waited = time.monotonic() - self._last_resize
        document = next(iter(self._resized.values())).document
        if waited < RESIZE_SETTLE_S and document is not None:
            delay = int((RESIZE_SETTLE_S - waited) * 1000) + 1
            self._resize_timer = document.add_timeout_callback(self._settle, delay)
            return
        columns: dict[str, list] = {k: [] for k in _BOX_COLUMNS}
        for *box, name, _color in self.box_rows():
            if handle := self._resized.get(name):
                box = [handle.left, handle.top, handle.right, handle.bottom]
            for column, value in zip(columns.values(), (name, *box), strict=True):
                column.append(value)
        self._resized.clear()
        rois = rois_from_boxes(columns, self.shape)
        if rois == self.rois:
            self.redraw()  # snapped back to the same pixels: the handles onto the boxes again
        self.set_rois(rois)

    def _labels_element(self, data):
        rows = [(x0 + 1, y0 + 1, name) for x0, y0, _x1, _y1, name, _c in data or []]
        return hv.Labels(rows, ["x", "y"], "name").opts(
            text_color="white", text_align="left", text_baseline="top", text_font_size="9pt"
        )
