"""Live processing of a detector stream, one frame at a time (``beamcat replay``, the live page).

Headless: NumPy frames in, accumulated image, step means and photon results out;
no page and no plotting here (`beamcat.live.replay` plays recordings through it and
writes results and figures).

FemtoMAX's dranspose pipeline (maxiv-science/drp-femtomax) turns every frame
into a processed image, adds it to an accumulated image and takes ROI means
that are averaged per motor step. `LivePipeline` does the same incrementally,
with the functions the offline accessors use, on NumPy frames:

``mode="image"``
    the frame as it is (Pilatus: photon counting already);
``mode="cmos"``
    `beamcat.analyses.detector.subtract_background` then ``threshold`` (Zyla);
``mode="photon"``
    `beamcat.analyses.photon.detect` on the frame, its events' `clean_image`
    (photons per pixel) as the processed image, and the energy `histogram`
    (Balor).

Then the processed image goes to an `beamcat.analyses.accumulate.Accumulator`
(reset on a change of shape, crop or pixel size, kept across scans), its
``roi_means`` to a `beamcat.analyses.steps.StepMeans` (one point per motor
step; the frame number is the step when the recording has no motor stream).
``mask_negative=True`` sets negative and NaN pixels of the processed image to 0
before both (Pilatus gaps: the original's ``clip(min=0)`` ROI rule).

The work is split as dranspose splits it: `LivePipeline.analyse` is the per-frame
(worker) stage, pure and thread-safe, returning a `FrameResult`;
`LivePipeline.add` is the reduction. `LivePipeline.process` does both for one
`beamcat.catalog.cbor_stream.StreamEvent` and measures the frame's latency.

Snapshot API (for a viewer polling from another thread)
-------------------------------------------------------
``LivePipeline.snapshot()`` returns a dict, taken under one lock:

``image`` : ndarray (y, x) or None
    Copy of the accumulated processed image (int64 or float64), None before
    the first accumulated frame.
``count`` : int
    Frames in ``image``.
``running`` : bool
    Whether frames are being accumulated (`start` / `stop`; `reset` clears).
``last`` : ndarray (y, x) or None
    The latest processed frame (what the original shows with integration off).
``frames`` : int
    Frames processed since the pipeline was made or `new_scan` was called.
``pixel_size`` : float or None
    Detector pixel pitch in m (from the stream header).
``step_table`` : Dataset or None
    ``mean``, ``std`` over ``(roi, step)``, ``count (step)``, the motor
    positions as coordinates over ``step`` (as `beamcat.analyses.steps.step_means`
    returns); None without ROIs or before the first frame of a step.
``histogram`` : DataArray (energy) or None
    Photon mode: events per energy bin over all frames (as
    `beamcat.analyses.photon.histogram`).
``clean_image`` : ndarray (y, x) int64 or None
    Photon mode: photons per pixel over all frames (whether accumulating or not).
``events`` : int
    Photon mode: events found so far.
``density`` : dict
    Photon mode: ``over_threshold_fraction``, ``pileup_fraction`` over all
    frames and ``dense`` (above the single-photon limits of
    `beamcat.analyses.photon`).
``latency`` : dict
    Per-frame processing time in s (``last``, ``mean``, ``median``, ``p95``,
    ``max``) and the number of frames ``n``.

Examples
--------
>>> from beamcat.catalog.cbor_stream import replay
>>> live = LivePipeline(mode="image", rois={"ring": (600, 300, 200, 100)})  # doctest: +SKIP
>>> for event in replay("drp_femtomax/"):  # doctest: +SKIP
...     live.process(event)
>>> view = live.snapshot()  # doctest: +SKIP
>>> view["count"], view["step_table"]["mean"].sel(roi="ring").values  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr

from beamcat.analyses import photon
from beamcat.analyses.accumulate import Accumulator, masked
from beamcat.analyses.detector import subtract_background, threshold
from beamcat.analyses.roi import roi_means
from beamcat.analyses.steps import StepMeans
from beamcat.catalog.cbor_stream import StreamEvent
from beamcat.errors import BeamcatWarning, OptionError
from beamcat.rois import Roi

__all__ = ["MODES", "FrameResult", "LivePipeline"]

Mode = Literal["image", "cmos", "photon"]
MODES = ("image", "cmos", "photon")
#: the pixel threshold of each mode when none is given: the Zyla's 12 ADU, detect's default
_THRESHOLDS = {"cmos": 12.0, "photon": 8.0}
_PIXELS = ("y", "x")


@dataclass(frozen=True)
class FrameResult:
    """The per-frame stage's output for one frame (a dranspose worker's payload).

    Attributes
    ----------
    frame_number : int
        The detector's frame number.
    image : ndarray (y, x)
        The processed frame (negatives masked when the pipeline says so).
    roi_means : dict of str to float
        Mean of the processed frame in each ROI.
    events : Dataset (event) or None
        Photon mode: the frame's events, as `beamcat.analyses.photon.detect` gives them.
    histogram : ndarray (bins,) or None
        Photon mode: the frame's events per energy bin.
    seconds : float
        Time the stage took.
    """

    frame_number: int
    image: np.ndarray
    roi_means: dict[str, float] = field(default_factory=dict)
    events: xr.Dataset | None = None
    histogram: np.ndarray | None = None
    seconds: float = 0.0


class LivePipeline:
    """Incremental background/threshold or photon detection -> accumulation -> ROI step means.

    See the module docstring for the modes, the split into `analyse` and `add`,
    and what `snapshot` returns.

    Parameters
    ----------
    mode : {"image", "cmos", "photon"}
        What a frame becomes before accumulation.
    background : float or ndarray (y, x)
        Dark level (ADU) for ``"cmos"`` and ``"photon"``.
    threshold : float, optional
        ``"cmos"``: pixels below it are set to 0 (default 12 ADU).
        ``"photon"``: a pixel more than this above the background belongs to a
        hit (default 8 ADU, detect's).
    energy_min, energy_max : float
        Photon mode: the energy cut and the pile-up flag (see `detect`).
    photon_roi : (x, y, w, h), optional
        Photon mode: detect only there (the clean image is 0 outside).
    method : {"maxima", "original"}
        Photon mode: the hit rule (see `detect`).
    bins : int
        Photon mode: energy histogram bins over ``(energy_min, 3 * energy_min)``.
    rois : mapping name -> (x, y, w, h) or mask, or a sequence, optional
        ROIs whose means are taken on every processed frame.
    accumulate : bool
        Start accumulating at once (the original's ``integrate``).
    mask_negative : bool
        Set negative and NaN pixels of the processed image to 0.
    pixel_size : float, optional
        Pixel pitch in m; a stream header's ``pixel_size`` replaces it.

    Raises
    ------
    OptionError
        An unknown mode or malformed ROIs. Options that depend on the frame
        (a ROI outside it, a threshold above ``energy_min``) raise at the
        first frame.
    """

    def __init__(
        self,
        *,
        mode: Mode = "image",
        background: float | np.ndarray = 100.0,
        threshold: float | None = None,
        energy_min: float = 1100.0,
        energy_max: float | None = None,
        photon_roi: Sequence[float] | None = None,
        method: photon.Method = "maxima",
        bins: int = 100,
        rois: Mapping[str, Roi] | Sequence[Roi] | None = None,
        accumulate: bool = True,
        mask_negative: bool = False,
        pixel_size: float | None = None,
    ):
        if mode not in MODES:
            raise OptionError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        if not isinstance(bins, int | np.integer) or bins < 1:
            raise OptionError(f"bins={bins!r}: expected a positive number of histogram bins")
        self.mode = mode
        self.background = background
        self.threshold = _THRESHOLDS.get(mode) if threshold is None else float(threshold)
        self.detect_options = {
            "threshold": self.threshold,
            "energy_min": energy_min,
            "energy_max": energy_max,
            "roi": photon_roi,
            "background": background,
            "method": method,
        }
        self.edges = np.linspace(energy_min, 3 * energy_min, int(bins) + 1)
        self.mask_negative = mask_negative
        self.pixel_size = pixel_size
        self.accumulator = Accumulator(pixel_size=pixel_size, running=accumulate)
        self.steps = StepMeans()
        self._lock = threading.Lock()
        self._rois = None
        self.set_rois(rois)
        self.header: dict = {}
        self._raw: np.ndarray | None = None  # the latest raw frame of `process`
        self._clear()

    # -- control ----------------------------------------------------------------------

    def _clear(self) -> None:
        self._frames = 0
        self._clean = Accumulator(running=True)  # photons per pixel over all frames
        self._histogram: xr.DataArray | None = None
        self._events: list[xr.Dataset] = []
        self._over = []  # per frame: fraction of analysed pixels above threshold
        self._latency: list[float] = []
        self.steps.reset()

    def start(self) -> None:
        """Accumulate the frames that arrive from now on."""
        self.accumulator.start()

    def stop(self) -> None:
        """Stop accumulating; the accumulated image stays."""
        self.accumulator.stop()

    def reset(self) -> None:
        """Forget the accumulated image (the next frame starts a new one)."""
        self.accumulator.reset()

    def new_scan(self) -> None:
        """Forget the step table, events, histogram, clean image and latencies of the last scan.

        The accumulated image is kept (it carries over scans, as in the original).
        """
        with self._lock:
            self._clear()

    @property
    def rois(self) -> Mapping[str, Roi] | Sequence[Roi] | None:
        """The ROIs as given (a sequence is named "ROI 1", "ROI 2"... by `roi_means`)."""
        return self._rois

    def set_rois(self, rois: Mapping[str, Roi] | Sequence[Roi] | None) -> None:
        """Replace the ROIs (None: none); the step table starts again (a ROI may keep its name).

        Raises
        ------
        OptionError
            Malformed ROIs or one outside the last frame (without frames yet,
            the first frame's `analyse` raises).
        """
        rois = rois if rois is not None and len(rois) else None
        last = self.accumulator.last
        if rois is not None and last is not None:  # check now, not at the next frame
            roi_means(xr.DataArray(np.zeros(last.shape), dims=_PIXELS), rois)
        with self._lock:
            self._rois = rois
            self.steps.reset()

    def set_header(self, header: Mapping) -> None:
        """A series header: kept for the results' attrs; its ``pixel_size`` (m) is used."""
        self.header = dict(header)
        self.pixel_size = header.get("pixel_size", self.pixel_size)

    # -- per frame --------------------------------------------------------------------

    def analyse(self, frame: np.ndarray, frame_number: int = 0) -> FrameResult:
        """The per-frame stage: processed image, ROI means and (photon mode) events.

        Pure: reads the pipeline's options only, so dranspose workers (or
        threads) can run it side by side.

        Parameters
        ----------
        frame : ndarray (y, x)
            A raw frame.
        frame_number : int
            Its detector frame number (the ``frame`` of its events).

        Raises
        ------
        OptionError
            `frame` is not 2-D, a ROI or the photon ROI lies outside it, or the
            photon thresholds contradict each other.
        """
        start = time.perf_counter()
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise OptionError(f"frame {frame_number}: expected one frame (y, x), got {frame.shape}")
        events = counts = None
        if self.mode == "image":
            image = frame
        elif self.mode == "cmos":
            pixels = xr.DataArray(frame, dims=_PIXELS)
            image = threshold(subtract_background(pixels, self.background), self.threshold).values
        else:
            stack = xr.DataArray(
                frame[None], dims=("frame", *_PIXELS), coords={"frame": [frame_number]}
            )
            with warnings.catch_warnings():
                # one frame is too few for the density check: `add` checks all frames
                warnings.simplefilter("ignore", BeamcatWarning)
                events = photon.detect(stack, **self.detect_options)
            image = photon.clean_image(events, frame.shape).values
            counts = photon.histogram(events, self.edges).values
        image = masked(image, self.mask_negative)
        rois, means = self._rois, {}
        if rois is not None:
            stats = roi_means(xr.DataArray(image, dims=_PIXELS), rois)["mean"]
            means = dict(zip(map(str, stats["roi"].values), stats.values.tolist(), strict=True))
        seconds = time.perf_counter() - start
        return FrameResult(int(frame_number), image, means, events, counts, seconds)

    def add(
        self,
        result: FrameResult,
        *,
        step: int | None = None,
        motors: Mapping[str, float] | None = None,
    ) -> None:
        """The reduction: add one frame's result to the accumulated state.

        Parameters
        ----------
        result : FrameResult
            From `analyse` (here or in a dranspose worker).
        step : int, optional
            The frame's scan point (-1: none, not in the step table); None to
            leave the step table to the caller (a dranspose reducer learns a
            frame's point only when the point ends: ``self.steps.add`` then).
        motors : mapping motor -> position, optional
            The point's motor positions.
        """
        start = time.perf_counter()
        image = xr.DataArray(result.image, dims=_PIXELS)
        if self.pixel_size is not None:  # another detector's frames reset the accumulator
            image.attrs["pixel_size"] = self.pixel_size
        with self._lock:
            self.accumulator.add(image)
            self._frames += 1
            if step is not None and result.roi_means:
                self.steps.add(result.roi_means, step=step, motors=motors)
            if result.events is not None:
                self._clean.add(result.image)
                self._events.append(result.events)
                self._over.append(result.events.attrs["over_threshold_fraction"])
                if self._histogram is None:
                    self._histogram = photon.histogram(result.events, self.edges)
                else:
                    total = self._histogram.values + result.histogram
                    self._histogram = self._histogram.copy(data=total)
            self._latency.append(result.seconds + time.perf_counter() - start)

    def process(self, event: StreamEvent) -> FrameResult | None:
        """Run one replayed or live stream event through the pipeline.

        A series header sets the pixel size; an image is analysed and added
        (its motor step from the event; the frame number when there is no
        motor); other events change nothing.

        Returns
        -------
        FrameResult or None
            The frame's result, None for a non-image event.
        """
        if event.kind == "header":
            self.set_header(event.header)
            return None
        if event.kind != "image":
            return None
        start = time.perf_counter()
        result = self.analyse(event.frame, event.frame_number)
        step = event.step if event.motors else event.frame_number
        self.add(result, step=step, motors=event.motors)
        with self._lock:  # the whole event, decoding excluded
            self._latency[-1] = time.perf_counter() - start
            self._raw = event.frame  # a reference, for `invalid_pixels`
        return result

    # -- results ----------------------------------------------------------------------

    def invalid_pixels(self) -> np.ndarray | None:
        """Pixels negative or NaN in the latest raw frame `process` saw (gaps, flagged pixels).

        With ``mask_negative`` the processed image holds them as 0; a viewer that
        integrates the accumulated image leaves them out with this mask.

        Returns
        -------
        ndarray (y, x) bool or None
            None before the first frame.
        """
        with self._lock:
            raw = self._raw
        return None if raw is None else ~(np.asarray(raw) >= 0)

    @property
    def frames(self) -> int:
        """Frames processed (since `new_scan`)."""
        return self._frames

    def latency(self) -> dict[str, float]:
        """Per-frame processing time in s: ``n``, ``last``, ``mean``, ``median``, ``p95``, ``max``.

        Measured from the decoded frame to the end of `add` (`process`).
        """
        with self._lock:
            times = np.array(self._latency)
        if times.size == 0:
            return {"n": 0}
        return {
            "n": int(times.size),
            "last": float(times[-1]),
            "mean": float(times.mean()),
            "median": float(np.median(times)),
            "p95": float(np.percentile(times, 95)),
            "max": float(times.max()),
        }

    def _density(self) -> dict:
        pileups = sum(int(e["pileup"].sum()) for e in self._events)
        n = sum(e.sizes["event"] for e in self._events)
        over = float(np.mean(self._over)) if self._over else 0.0
        pileup = pileups / max(n, 1)
        dense = over > photon.MAX_OVER_THRESHOLD or pileup > photon.MAX_PILEUP
        return {"over_threshold_fraction": over, "pileup_fraction": pileup, "dense": dense}

    def snapshot(self) -> dict:
        """The state for a viewer, consistent while frames arrive (see the module docstring)."""
        with self._lock:
            image, count = self.accumulator.snapshot()
            last = self.accumulator.last
            clean = self._clean.image if self.mode == "photon" else None
            histogram = self._histogram
            events = sum(e.sizes["event"] for e in self._events)
            density = self._density() if self.mode == "photon" else {}
            frames = self._frames
        table = self.steps.to_dataset() if self.steps.count else None
        return {
            "image": image,
            "count": count,
            "running": self.accumulator.running,
            "last": None if last is None else last.copy(),
            "frames": frames,
            "pixel_size": self.pixel_size,
            "step_table": table,
            "histogram": histogram,
            "clean_image": clean,
            "events": events,
            "density": density,
            "latency": self.latency(),
        }

    def events(self) -> xr.Dataset:
        """Photon mode: every frame's events in one Dataset (as `detect` gives for all frames).

        Raises
        ------
        OptionError
            Not in photon mode, or no frame processed yet.
        """
        with self._lock:
            parts = list(self._events)
            density = self._density()
        if self.mode != "photon" or not parts:
            raise OptionError(f"no photon events: mode {self.mode!r}, {len(parts)} frames")
        out = xr.concat(parts, dim="event", combine_attrs="override")
        density.pop("dense")
        return out.assign_attrs(density)
