"""The app's objects without a browser: table rows, quick looks, errors, pages, serve()."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from beamcat.apps import serve as serve_module
from beamcat.apps.serve import build_app, main, serve
from beamcat.errors import SourceNotFoundError


def _select(app, kind):
    return app.main[0][0].select(kind)  # the Catalog tab (other pages have plots and alerts too)


@pytest.fixture
def app(small_catalog):
    return build_app(small_catalog.path)


def _show(app, name):
    table = _select(app, pn.widgets.Tabulator)[0]
    table.selection = [table.value["name"].tolist().index(name)]
    plots = [p.object for p in _select(app, pn.pane.HoloViews)]
    alerts = [a.object for a in _select(app, pn.pane.Alert)]
    attrs = next(
        h.object for h in _select(app, pn.pane.HTML) if "<th>attribute</th>" in (h.object or "")
    )
    return plots, alerts, attrs


def test_table_rows_come_from_lazily_opened_entries(small_catalog, raise_if_dask_computes):
    with raise_if_dask_computes():  # dims, shape and size come from headers only
        app = build_app(small_catalog.path)
    rows = _select(app, pn.widgets.Tabulator)[0].value.set_index("name")
    assert list(rows.index) == ["broken", "spectra", "stack", "temp"]
    columns = ["format", "dims", "shape", "size"]
    # size: bytes of the signal, shape x itemsize
    assert rows.loc["stack", columns].tolist() == [
        "tiff",
        "frame, y, x",
        "6 x 40 x 60",
        6 * 40 * 60 * 2,
    ]
    assert rows.loc["spectra", columns].tolist() == [
        "spice",
        "time, wavelength, y, x",
        "1 x 12 x 16 x 3",
        1 * 12 * 16 * 3 * 4,  # float32
    ]
    assert rows.loc["temp", columns].tolist() == ["temperature-log", "time", "30", 30 * 8]
    meta = ["instrument", "sample", "run", "description"]
    assert rows.loc["stack", meta].tolist() == ["IMAT", "catalyst bed", "42", "x"]
    # the broken entry shows its error in its row and leaves the others intact
    assert str(small_catalog.broken) in rows.loc["broken", "error"]
    assert rows.loc["broken", "dims"] == ""
    assert (rows.drop("broken")["error"] == "").all()


def test_filter_text_narrows_the_rows_and_selection_follows(app):
    page_search = _select(app, pn.widgets.TextInput)[0]
    table = _select(app, pn.widgets.Tabulator)[0]
    page_search.value_input = "TIFF"  # case-insensitive, any text column
    assert table.value["name"].tolist() == ["broken", "stack"]
    plots, _, _ = _show(app, "stack")
    assert isinstance(plots[0], hv.Image)
    page_search.value_input = "catalyst"  # metadata (sample) of "stack" only
    assert table.value["name"].tolist() == ["stack"]
    assert table.selection == [0]  # the selected entry stays selected
    page_search.value_input = ""
    assert len(table.value) == 4 and table.selection == [2]


def test_selecting_an_image_entry_shows_its_mean_frame_and_attrs(app, small_catalog):
    plots, alerts, attrs = _show(app, "stack")
    assert alerts == []
    (image,) = plots
    assert isinstance(image, hv.Image)
    values = image.dimension_values(2, flat=False)
    # mean of the first 4 frames (rows by ascending y; the plot flips the axis, not the data);
    # float64 mean of 4 integers: exact up to the last bit
    expected = small_catalog.frames[:4].astype("float64").mean(axis=0)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    lo, hi = image.vdims[0].range
    assert hi < 1000  # the 60000-count hot pixel does not set the colour scale
    assert "<tr><th>instrument</th><td>IMAT</td></tr>" in attrs
    assert "<tr><th>units</th><td>counts</td></tr>" in attrs
    assert f"<th>source</th><td>{small_catalog.path.parent / 'stack.tif'}</td>" in attrs


def test_selecting_a_log_shows_its_curve(app, small_catalog):
    plots, _, _ = _show(app, "temp")
    values = plots[0].Curve.Temp2.dimension_values("Temp2")
    # the log file stores 4 decimals
    np.testing.assert_allclose(values, small_catalog.temperatures, atol=1e-4)


def test_selecting_spice_shows_the_nan_aware_mean_spectrum(app, small_catalog):
    plots, alerts, attrs = _show(app, "spectra")
    (curve,) = plots
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(small_catalog.radiance[0].astype("float64"), axis=(1, 2))
    # float32 data summed by the reader in float32: ~1e-7 relative
    np.testing.assert_allclose(curve.dimension_values(1), expected, rtol=1e-5)
    assert "<tr><th>units</th><td>W/m2/sr/nm</td></tr>" in attrs


def test_a_broken_entry_shows_an_alert_and_the_page_keeps_working(app, small_catalog):
    plots, alerts, attrs = _show(app, "broken")
    assert plots == []
    assert len(alerts) == 1 and str(small_catalog.broken) in alerts[0]
    plots, alerts, _ = _show(app, "stack")
    assert alerts == [] and isinstance(plots[0], hv.Image)


def test_pages_share_the_selected_entry(small_catalog):
    seen, states = [], []

    def echo_page(state):
        states.append(state)
        state.param.watch(lambda e: seen.append(e.new), "entry")
        return pn.pane.Markdown("echo")

    app = build_app(
        small_catalog.path, pages={"Catalog": serve_module.PAGES["Catalog"], "Echo": echo_page}
    )
    assert app.main[0]._names == ["Catalog", "Echo"]
    _show(app, "temp")
    assert seen == ["temp"]
    # a page that sets the entry moves the catalog page's selection and quick look
    states[0].entry = "stack"
    table = _select(app, pn.widgets.Tabulator)[0]
    assert table.selection == [table.value["name"].tolist().index("stack")]
    assert isinstance(_select(app, pn.pane.HoloViews)[0].object, hv.Image)


def test_serve_opens_the_catalog_once_and_builds_a_session_app(monkeypatch, small_catalog):
    calls = {}
    monkeypatch.setattr(pn, "serve", lambda panels, **kw: calls.update(panels=panels, **kw))
    main([str(small_catalog.path), "--port", "5123", "--address", "0.0.0.0"])
    assert (calls["port"], calls["address"], calls["show"]) == (5123, "0.0.0.0", False)
    assert calls["websocket_origin"] == ["*"]
    session_app = calls["panels"]()
    assert isinstance(session_app, pn.template.BaseTemplate)
    assert len(_select(session_app, pn.widgets.Tabulator)[0].value) == 4


def test_serve_fails_before_serving_on_a_missing_catalog(monkeypatch, tmp_path):
    monkeypatch.setattr(pn, "serve", lambda *a, **k: pytest.fail("served a missing catalog"))
    with pytest.raises(SourceNotFoundError, match="nope.yaml"):
        serve(tmp_path / "nope.yaml")
