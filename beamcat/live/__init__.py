r"""Streaming: the incremental pipeline, replay of recordings, the dranspose worker/reducer.

The ``live`` floor sits above `beamcat.figures` and beside `beamcat.workflows`; it
imports no page (the Live page in `beamcat.apps` uses it) and pulls in no plotting
at import time.

Modules
-------
`beamcat.live.pipeline`
    `LivePipeline`: one frame at a time, per-frame stage (``analyse``) and
    reduction (``add``), a snapshot for viewers.
`beamcat.live.replay`
    `run_replay` (``beamcat replay``) and `write_results` (Zarr, photon list, PNGs).
`beamcat.live.dranspose_worker`, `beamcat.live.dranspose_reducer`
    beamcat on dranspose, MAX IV's distributed stream processing (optional extra
    ``live``).

A dranspose pipeline is a worker class, run on every event by many workers, and a
reducer class that receives the workers' results. beamcat provides both, wrapping
`beamcat.live.pipeline.LivePipeline`: the worker runs its per-frame stage
(``analyse``: background/threshold or photon detection, ROI means), the reducer its
reduction (accumulation, ROI means per motor step, photon histogram and clean
image) and publishes the results.

Replay a recording (FemtoMAX: a detector stream and the sardana motor stream)::

    dranspose replay -w "beamcat.live.dranspose_worker:BeamcatWorker" \
        -r "beamcat.live.dranspose_reducer:BeamcatReducer" \
        -f pilatus_lab6pilatus-ingester-*.cbors.gz pilatus_lab6sardana-ingester-*.cbors \
        -p params.json

with ``params.json`` a list of ``{"name": ..., "data": ...}`` (the parameters are
listed in `beamcat.live.dranspose_worker.PARAMETERS`), e.g.
``[{"name": "rois", "data": "{\"ring\": [600, 300, 300, 200]}"}, {"name": "out",
"data": "results/"}]``.

dranspose 0.2 reads recordings with cbor2's pre-6 API (``tag_hook(decoder, tag)``,
``CBORDecodeEOF`` an ``EOFError``), so the extra needs ``cbor2<6``.
"""

from beamcat.live.pipeline import MODES, FrameResult, LivePipeline
from beamcat.live.replay import ReplaySummary, run_replay, write_results

__all__ = ["MODES", "FrameResult", "LivePipeline", "ReplaySummary", "run_replay", "write_results"]
