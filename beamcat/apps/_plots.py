"""The plot pane every page uses: a HoloViews pane whose axes belong to its page alone."""

from __future__ import annotations

import panel as pn


def plot_pane(obj=None, **params) -> pn.pane.HoloViews:
    """A `panel.pane.HoloViews` whose axes are not linked to other panes.

    Panel links the axes of every HoloViews pane in one app whose dimensions
    share a name: a page's 256-pixel-wide image (dims ``x``, ``y``) would take
    the 0-320 axis of another page's 320-pixel image. A plot that shares axes
    with another does so inside one HoloViews Layout instead.
    """
    return pn.pane.HoloViews(obj, linked_axes=False, **params)
