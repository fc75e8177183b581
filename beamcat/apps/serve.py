"""`beamcat serve`: the Panel app that browses a catalog, one tab per page.

Pages are listed in `PAGES` (title -> ``"module:callable"``, imported when an app
is built); each callable is the page module's plain function ``page``, which takes
the session's `AppState` here and a catalog (or nothing: the demo) in a notebook,
and returns a Panel object. A page follows and sets ``state.entry``, the selected
catalog entry.

Everything (Bokeh, Panel, Tabulator JS/CSS) is served by the app's own server,
so it works on a beamline PC without internet.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import panel as pn

from beamcat.apps.state import AppState, CatalogContext, catalog_label

#: tab title -> "module:callable(state) -> viewable"
PAGES: dict[str, str] = {
    "Catalog": "beamcat.apps.catalog_page:page",
    "Radiography": "beamcat.apps.radiography_page:page",
    "Live": "beamcat.apps.live_page:page",
    "Diffraction": "beamcat.apps.diffraction_page:page",
    "Gain map": "beamcat.apps.gainmap_page:page",
    "4D-STEM": "beamcat.apps.stem4d_page:page",
    "SPICE": "beamcat.apps.spice_page:page",
}

_WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


def _page_factory(target: str | Callable[[AppState], Any]) -> Callable[[AppState], Any]:
    if callable(target):
        return target
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def build_app(
    catalog: str | os.PathLike | CatalogContext | Any | None = None,
    *,
    trusted: bool = False,
    pages: Mapping[str, str | Callable[[AppState], Any]] | None = None,
) -> pn.template.BootstrapTemplate:
    """Build the app for one browser session.

    Parameters
    ----------
    catalog : path, intake Catalog, CatalogContext or None
        None opens the embedded demo catalog. A `CatalogContext` is shared as
        is (the server opens the catalog once for all sessions).
    trusted : bool
        Allow catalogs with code-running Intake templates (see `open_catalog`).
    pages : mapping, optional
        Tab title -> ``"module:callable"`` or a callable taking the `AppState`;
        defaults to `PAGES`.

    Returns
    -------
    panel.template.BootstrapTemplate
        ``.main[0]`` is the `pn.Tabs` of pages; ``.servable()`` or `serve` it.
    """
    pn.extension("tabulator")
    context = (
        catalog if isinstance(catalog, CatalogContext) else CatalogContext(catalog, trusted=trusted)
    )
    state = AppState(context)
    tabs = pn.Tabs(
        *[(title, _page_factory(target)(state)) for title, target in (pages or PAGES).items()],
        dynamic=True,  # a page's view is built when its tab is first shown
        sizing_mode="stretch_width",
    )
    sidebar = [
        pn.pane.Markdown(f"**Catalog**  \n`{context.path}`  \n{len(context.names)} entries"),
        pn.pane.Markdown(
            pn.bind(lambda entry: f"**Selected entry**  \n{entry or '—'}", state.param.entry)
        ),
    ]
    # Bootstrap, not Fast: the Fast design loads its font from Google Fonts (fails offline)
    return pn.template.BootstrapTemplate(
        title=f"beamcat — {catalog_label(context)}",
        sidebar=sidebar,
        main=[tabs],
        sidebar_width=260,
    )


def serve(
    catalog: str | os.PathLike | None = None,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    trusted: bool = False,
) -> None:
    """Serve the app until interrupted (blocking).

    The catalog is opened (and its trust checked) once, before serving, so a
    bad catalog fails here rather than in the browser.

    Parameters
    ----------
    catalog : path, optional
        Catalog YAML; None serves the embedded demo catalog.
    port : int
        0 picks a free port.
    address : str
        Interface to listen on; ``"0.0.0.0"`` makes it reachable from other
        machines (and then accepts websocket connections from any origin).
    show : bool
        Open a browser tab.
    trusted : bool
        Allow catalogs with code-running Intake templates.
    """
    context = CatalogContext(catalog, trusted=trusted)
    for target in PAGES.values():  # import pages (and plotting) now, not in the first session
        _page_factory(target)
    origin = ["*"] if address in _WILDCARD_ADDRESSES else [f"{address}:{port}", f"localhost:{port}"]
    pn.serve(
        lambda: build_app(context),
        port=port,
        address=address,
        show=show,
        title=f"beamcat — {catalog_label(context)}",
        websocket_origin=origin if port else None,
        threaded=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m beamcat.apps.serve [CATALOG] [--port N] [--address A] [--show] [--trust]``."""
    parser = argparse.ArgumentParser(prog="beamcat serve", description=__doc__.splitlines()[0])
    parser.add_argument("catalog", nargs="?", help="catalog YAML (default: the demo catalog)")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument(
        "--trust", action="store_true", help="allow catalogs whose templates run code"
    )
    args = parser.parse_args(argv)
    serve(args.catalog, port=args.port, address=args.address, show=args.show, trusted=args.trust)


if __name__ == "__main__":
    main()
