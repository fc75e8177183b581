"""What every page shows when something goes wrong: a red error banner and a yellow note banner.

A page is made of parts (the calibration, the ROIs, a replay...); each part
reports at most one message under its own key, and a banner shows the messages
of all parts at once, disappearing when the last one is cleared. Errors are
problems that stop a part (a bad choice, an unreadable file); notes are
warnings that leave its results usable (skipped mask ROIs, T <= 0 samples).
"""

from __future__ import annotations

import panel as pn

from beamcat.errors import BeamcatError


def error_message(err: Exception) -> str:
    """A beamcat error's message (it names the file); other errors prefixed by their type."""
    return str(err) if isinstance(err, BeamcatError) else f"{type(err).__name__}: {err}"


class Banner:
    """One alert showing the messages of several parts of a page, one per part.

    Parameters
    ----------
    alert_type : {"danger", "warning", ...}
        Bootstrap alert type: red errors, yellow notes.
    css_class : str
        Extra CSS class of the alert, for tests and styles.

    Attributes
    ----------
    pane : panel.pane.Alert
        The alert to lay out; hidden while there is no message.
    messages : dict
        Part -> message shown.
    """

    def __init__(self, alert_type: str, css_class: str):
        self.pane = pn.pane.Alert(
            alert_type=alert_type,
            visible=False,
            sizing_mode="stretch_width",
            css_classes=[css_class],
        )
        self.messages: dict[str, str] = {}

    def set(self, what: str, message: str | None) -> None:
        """Show the message of part `what` (None or empty clears it)."""
        if message:
            self.messages[what] = message
        else:
            self.messages.pop(what, None)
        self.pane.object = "\n\n".join(self.messages.values())
        self.pane.visible = bool(self.messages)


class Banners:
    """A page's red error banner and yellow note banner.

    Attributes
    ----------
    errors, notes : Banner
    alert, note : panel.pane.Alert
        The two banners' panes (errors red, notes yellow), to lay out at the top.
    """

    def __init__(self):
        self.errors = Banner("danger", "beamcat-errors")
        self.notes = Banner("warning", "beamcat-notes")
        self.alert, self.note = self.errors.pane, self.notes.pane

    def set_error(self, what: str, message: str | None) -> None:
        """Show (or clear, with None) the error of one part of the page in the red banner."""
        self.errors.set(what, message)

    def set_note(self, what: str, message: str | None) -> None:
        """Show (or clear) a warning that leaves results usable, in the yellow banner."""
        self.notes.set(what, message)
