"""The dranspose reducer: the reduction of `beamcat.live.pipeline.LivePipeline`.

It adds the workers' `FrameResult` s to a `LivePipeline` (accumulated image,
photon events, histogram and clean image) and publishes the state in
``self.publish`` (served by dranspose over HTTP, laid out as drp-femtomax's
reducer does, NeXus-style ``_attrs`` entries for the viewers):

``image``, ``accumulated_number``, ``pixel_size``, ``frames``
    The accumulated image and the frames in it (the original's names).
``step_means``
    Per ROI ``{"y": mean, "y_errors": std, "x": motor position (frame number
    without a motor)}`` and ``"<roi>_attrs"`` (NXdata), so
    ``HsdsViewer <url> "/step_means/ROI 2"`` plots it with error bars.
``clean_image``, ``histogram`` (``{"x": bin centres, "y": events}``), ``events``
    Photon mode.
``latency``
    The workers' per-frame analysis time plus the reduction, in s.

Steps as the original learns them: sardana sends a point's ``RecordData`` when
the point has been counted, in the event of its last frame, so a frame belongs
to the first record at or after its event number (the offline reader's rule,
`beamcat.catalog.cbor_stream`). Frames wait until their record arrives; results
may come in any order. Without a sardana scan description every frame is its
own step (its frame number). The accumulator is kept in the pipeline's
``context`` so it carries over to the next scan, as the original's
``prev_accumulator``.
"""

from __future__ import annotations

import bisect
import threading

import numpy as np

from beamcat.live.dranspose_worker import PARAMETERS, parameter, pipeline_options
from beamcat.live.pipeline import FrameResult, LivePipeline
from beamcat.live.replay import write_results

__all__ = ["BeamcatReducer"]

_CONTEXT_KEY = "beamcat_accumulator"


class BeamcatReducer:
    """dranspose reducer: accumulates the workers' frame results and publishes them.

    Parameters
    ----------
    parameters : dict of str to WorkParameter, optional
        See `beamcat.live.dranspose_worker.PARAMETERS`; ``out`` names a folder
        where `finish` writes the results (`write_results`).
    context : dict, optional
        Kept by dranspose from one scan to the next: holds the accumulator.

    Attributes
    ----------
    pipeline : LivePipeline
        The reduction's state (``pipeline.snapshot()`` for Python callers).
    publish : dict
        What dranspose serves (see the module docstring).
    """

    @staticmethod
    def describe_parameters():
        """The parameters dranspose offers (shared with the worker)."""
        return PARAMETERS

    def __init__(self, parameters=None, context=None, *args, **kwargs):
        self.pipeline = LivePipeline(**pipeline_options(parameters))
        context = {} if context is None else context
        if _CONTEXT_KEY in context:  # the accumulation goes on across scans
            self.pipeline.accumulator = context[_CONTEXT_KEY]
        context[_CONTEXT_KEY] = self.pipeline.accumulator
        self.publish: dict = {}
        self.publish_rlock = threading.RLock()  # dranspose's HTTP server reads under it
        self._motors: list[str] | None = None  # the scan's reference motors, once described
        self._records: dict[int, dict] = {}  # event number -> RecordData
        self._pending: dict[int, FrameResult] = {}  # frames whose point has not ended yet
        self._seen: set[int] = set()  # event numbers of frames added (the first is broadcast)

    def process_result(self, result, parameters=None, *args, **kwargs) -> None:
        """Add one worker result (see `beamcat.live.dranspose_worker`)."""
        payload = result.payload or {}
        number = result.event_number
        if "header" in payload:
            self.pipeline.set_header(payload["header"])
        if "scan" in payload:
            self._motors = list(payload["scan"]["motors"])
        if "record" in payload:
            self._records[number] = payload["record"]
        frame = payload.get("frame")
        if frame is not None and number not in self._seen:
            self._seen.add(number)
            self.pipeline.add(frame)
            if frame.roi_means:
                self._pending[number] = frame
        self._assign_steps()
        self._publish()

    def _assign_steps(self) -> None:
        """Give waiting frames their scan point: the first record at or after their event."""
        if self._motors is None:  # no scan: each frame is its own step, as offline
            for number in sorted(self._pending):
                frame = self._pending.pop(number)
                self.pipeline.steps.add(frame.roi_means, step=frame.frame_number)
            return
        ends = sorted(self._records)
        for number in sorted(self._pending):
            i = bisect.bisect_left(ends, number)
            if i == len(ends):
                continue  # its point has not ended yet
            record = self._records[ends[i]]
            motors = {m: float(record.get(m, np.nan)) for m in self._motors}
            self.pipeline.steps.add(
                self._pending.pop(number).roi_means, step=int(record["point_nb"]), motors=motors
            )

    def _publish(self) -> None:
        view = self.pipeline.snapshot()
        out = {
            "image": view["image"],
            "accumulated_number": view["count"],
            "pixel_size": view["pixel_size"],
            "frames": view["frames"],
            "latency": view["latency"],
            "step_means": _step_means(view["step_table"], self._motors),
        }
        if self.pipeline.mode == "photon":
            histogram = view["histogram"]
            out.update(clean_image=view["clean_image"], events=view["events"])
            if histogram is not None:
                out["histogram"] = {"x": histogram["energy"].values, "y": histogram.values}
                out["histogram_attrs"] = {"NX_class": "NXdata", "signal": "y", "axes": ["x"]}
        with self.publish_rlock:
            self.publish = out

    def finish(self, parameters=None, *args, **kwargs) -> None:
        """End of the scan: publish; write the results into the ``out`` folder if set (replaced)."""
        self._publish()
        out = parameter(parameters, "out")
        if out:
            write_results(self.pipeline, out, overwrite=True)


def _step_means(table, motors: list[str] | None) -> dict:
    """The step table as the original publishes it: per ROI y, y_errors, x and NXdata attrs."""
    if table is None:
        return {}
    axis = motors[0] if motors and motors[0] in table.coords else "step"
    out = {}
    for roi in map(str, table["roi"].values):
        out[roi] = {
            "y": table["mean"].sel(roi=roi).values,
            "y_errors": table["std"].sel(roi=roi).values,
            "x": table[axis].values,
            "x_attrs": {"long_name": axis},
        }
        out[f"{roi}_attrs"] = {"NX_class": "NXdata", "signal": "y", "axes": ["x"]}
    return out
