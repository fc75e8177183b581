"""The dranspose worker: the per-frame stage of `beamcat.live.pipeline.LivePipeline`.

Each event holds one message per stream. Detector streams (``typ == "STINS"``,
dranspose's Stream1: ``header``, ``image``, ``series_end``) are parsed with
``dranspose.middlewares.stream1.parse``; an image payload that it leaves
undecoded (compressed) is decoded by `beamcat.catalog._cbor_items.decode_frame`,
as the offline reader does. The sardana stream (``typ == "sardana"``) is parsed
with ``dranspose.middlewares.sardana.parse``.

The result of an event (a dict, pickled to the reducer) has the keys that apply:
``"header"`` (series header: ``filename``, ``energy``, ``exposure``, ``pixel_size``
...), ``"frame"`` (a `FrameResult`), ``"series_end"``, ``"scan"`` (sardana's scan
description: ``motors``, ``title``, ``serialno``), ``"record"`` (a scan point's
``RecordData`` as a dict), ``"record_end"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dranspose.data.sardana import SardanaDataDescription, SardanaRecordData, SardanaRecordEnd
from dranspose.data.stream1 import Stream1Data, Stream1End, Stream1Start
from dranspose.middlewares import sardana, stream1
from dranspose.parameters import BoolParameter, FloatParameter, StrParameter

from beamcat.catalog import _cbor_items as items
from beamcat.catalog.cbor_stream import PIXEL_SIZES
from beamcat.errors import FormatError, OptionError
from beamcat.live.pipeline import LivePipeline

__all__ = ["PARAMETERS", "BeamcatWorker", "parameter", "pipeline_options", "pixel_size"]

#: the pipeline's dranspose parameters (worker and reducer share them)
PARAMETERS = [
    StrParameter(name="mode", default="image", description="image, cmos or photon"),
    FloatParameter(name="background", default=100.0, description="dark level (ADU)"),
    StrParameter(
        name="threshold", default="", description="cmos: 12, photon: 8 ADU above background"
    ),
    FloatParameter(name="energy_min", default=1100.0, description="photon energy cut (ADU)"),
    FloatParameter(name="energy_max", default=0.0, description="pile-up flag above; 0: none"),
    StrParameter(name="photon_roi", default="", description="JSON [x, y, w, h]"),
    StrParameter(name="method", default="maxima", description="photon hits: maxima, original"),
    StrParameter(name="rois", default="", description='JSON {"name": [x, y, w, h], ...}'),
    BoolParameter(name="integrate", default=True, description="accumulate the frames"),
    BoolParameter(name="mask_negative", default=False, description="negative pixels count 0"),
    StrParameter(name="stream", default="", description="detector stream (the only STINS)"),
    StrParameter(name="out", default="", description="reducer: folder for the results"),
]
_DEFAULTS = {p.name: p.default for p in PARAMETERS}


def _json(name: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(f"dranspose parameter {name!r} = {text!r} is not JSON: {exc}") from None


def parameter(parameters: Mapping | None, name: str):
    """The value of a dranspose parameter (``{name: WorkParameter}``), its default when missing."""
    given = (parameters or {}).get(name)
    value = getattr(given, "value", given)
    return _DEFAULTS[name] if value is None else value


def pipeline_options(parameters: Mapping | None) -> dict:
    """`LivePipeline` options from dranspose parameters (``{name: WorkParameter}``).

    Missing parameters take their defaults (`PARAMETERS`).
    """
    values = {name: parameter(parameters, name) for name in _DEFAULTS}
    threshold = str(values["threshold"]).strip()
    try:
        threshold = float(threshold) if threshold else None
    except ValueError:
        raise OptionError(f"dranspose parameter threshold={threshold!r}: not a number") from None
    return {
        "mode": values["mode"],
        "background": float(values["background"]),
        "threshold": threshold,
        "energy_min": float(values["energy_min"]),
        "energy_max": float(values["energy_max"]) or None,
        "photon_roi": _json("photon_roi", values["photon_roi"]) if values["photon_roi"] else None,
        "method": values["method"],
        "rois": _json("rois", values["rois"]) if values["rois"] else None,
        "accumulate": bool(values["integrate"]),
        "mask_negative": bool(values["mask_negative"]),
    }


def pixel_size(stream: str) -> float | None:
    """The pixel pitch (m) of a detector stream, known from its name (pilatus, balor, zyla)."""
    return next((size for key, size in PIXEL_SIZES.items() if key in stream.lower()), None)


class BeamcatWorker:
    """dranspose worker: parses the streams of an event and analyses its frame.

    Parameters
    ----------
    parameters : dict of str to WorkParameter, optional
        See `PARAMETERS`; read again at every event (they may change live).
    """

    @staticmethod
    def describe_parameters():
        """The parameters dranspose offers (`PARAMETERS`)."""
        return PARAMETERS

    def __init__(self, parameters=None, *args, **kwargs):
        self._options: dict | None = None
        self._pipeline: LivePipeline | None = None

    def pipeline(self, parameters=None) -> LivePipeline:
        """The pipeline for these parameters (made again when they change)."""
        options = pipeline_options(parameters)
        if options != self._options:
            self._pipeline, self._options = LivePipeline(**options), options
        return self._pipeline

    def process_event(self, event, parameters=None, *args, **kwargs) -> dict | None:
        """The result of one event (see the module docstring), None when nothing in it is ours."""
        result = {}
        detectors = {k: v for k, v in event.streams.items() if v.typ == "STINS"}
        wanted = parameter(parameters, "stream")
        if wanted:
            detectors = {k: v for k, v in detectors.items() if k == wanted}
        elif len(detectors) > 1:
            raise OptionError(
                f"event {event.event_number}: detector streams {sorted(detectors)}; "
                "set the parameter 'stream' to one of them"
            )
        for name, data in detectors.items():
            result.update(self._detector(name, data, event.event_number, parameters))
        for data in event.streams.values():
            if data.typ == "sardana":
                result.update(_sardana(data))
        return result or None

    def _detector(self, name: str, data, number: int, parameters) -> dict:
        frames = data.get_bytes().frames
        packet = stream1.parse(data)
        if isinstance(packet, Stream1Start):
            header = packet.model_dump(exclude={"htype", "msg_number"})
            if len(frames) > 1:  # the detector's settings: energy, threshold, exptime ...
                header.update(items.parse_json(frames[1], f"event {number}: {name} header part 1"))
            if "exptime" in header:
                header["exposure"] = header.pop("exptime")
            return {"header": {**header, "detector": name, "pixel_size": pixel_size(name)}}
        if isinstance(packet, Stream1End):
            return {"series_end": name}
        if isinstance(packet, Stream1Data):
            image = getattr(packet, "data", None)
            if image is None:  # compressed: stream1.parse decodes "none" only
                if len(frames) < 2:
                    raise FormatError(f"event {number}: {name} image without its payload")
                image = items.decode_frame(frames[1], packet.model_dump())
            return {"frame": self.pipeline(parameters).analyse(image, packet.frame)}
        return {}


def _sardana(data) -> dict:
    packet = sardana.parse(data)
    if isinstance(packet, SardanaDataDescription):
        motors = list(getattr(packet, "ref_moveables", []) or [])
        return {"scan": {"motors": motors, "title": packet.title, "serialno": packet.serialno}}
    if isinstance(packet, SardanaRecordData):
        return {"record": packet.model_dump()}
    if isinstance(packet, SardanaRecordEnd):
        return {"record_end": True}
    return {}
