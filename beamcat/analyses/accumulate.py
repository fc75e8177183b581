"""Accumulation of detector frames: the offline lazy sum and the live `Accumulator`.

FemtoMAX adds up many weak exposures to see anything at all (drp-femtomax's
reducer keeps one accumulated image with the number of frames in it). Offline,
`accumulate` sums a stack along ``frame`` as a dask tree reduction (a partial
sum per frame chunk, partials added pairwise), so memory stays at a few frames
however long the stack; `running_sum` gives the image after every frame.
Live, an `Accumulator` adds frames as they arrive.

Sums are kept in int64 for integer and boolean frames (exact; the original
adds uint16 CMOS frames as NumPy does, which also promotes) and float64 for
float frames (float32 Pilatus frames summed over 10,000 exposures keep their
last digit). Like the original, values are added as they are: Pilatus gap and
defect pixels (-1 and -2 in every frame) accumulate to large negative numbers
and NaN stays NaN. ``mask_negative=True`` adds 0 for negative and NaN pixels
instead, the rule the original uses for its ROI means (``clip(min=0)``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from beamcat.analyses._history import carried, history
from beamcat.analyses.moments import sum_frames
from beamcat.errors import OptionError

__all__ = ["Accumulator", "accumulate", "running_sum", "sum_dtype"]


#: attrs carried from the frames to the accumulated image
def sum_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype frames of `dtype` are summed in: int64 for bool/integers, float64 for floats.

    uint64 stays uint64 (int64 would wrap its top half); anything else raises.
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint64:
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.int64)
    if dtype.kind == "f":
        return np.dtype(np.float64)
    raise OptionError(f"frames of dtype {dtype} cannot be accumulated; expected numbers")


def masked(values, mask_negative: bool):
    """`values` with negative and NaN pixels replaced by 0 when `mask_negative` (NumPy or dask)."""
    if not mask_negative or values.dtype.kind in "bu":
        return values
    return np.where(values >= 0, values, 0).astype(values.dtype, copy=False)


def _check(frames, dim: str) -> None:
    if not isinstance(frames, xr.DataArray) or dim not in frames.dims:
        dims = getattr(frames, "dims", type(frames).__name__)
        raise OptionError(f"frames: expected a DataArray with a {dim!r} dim, got {dims}")
    if frames.sizes[dim] == 0:
        where = frames.attrs.get("source", "frames")
        raise OptionError(f"{where}: no frames along {dim!r}; nothing to accumulate")


def _result(frames: xr.DataArray, total: xr.DataArray, count: tuple, name: str, line: str):
    """Dataset(sum, count) with the frames' units and carried attrs, one more history line."""
    units = frames.attrs.get("units")
    attrs = carried(frames.attrs)
    attrs["history"] = history(frames.attrs, line)
    return xr.Dataset(
        {
            "sum": total.assign_attrs(long_name=name, **({"units": units} if units else {})),
            "count": (*count, {"units": "1", "long_name": "frames"}),
        },
        attrs={**attrs, "signal": "sum"},
    )


def accumulate(
    frames: xr.DataArray, *, dim: str = "frame", mask_negative: bool = False
) -> xr.Dataset:
    """Sum frames along `dim` and count them: the accumulated image.

    Parameters
    ----------
    frames : DataArray (frame, y, x)
        Any dims; `dim` is summed over. NumPy- or dask-backed, any chunking.
    dim : str
        The dim to sum over.
    mask_negative : bool
        Add 0 for negative and NaN pixels (Pilatus gaps and defects: -1, -2)
        instead of their value. The default adds every value as the original does.

    Returns
    -------
    Dataset
        ``sum (y, x)`` in int64 (integer frames) or float64 (float frames), and
        ``count`` (0-d int64) the number of frames summed. Dask-backed when
        `frames` is: the frame-sum tree reduction of `beamcat.analyses.moments`
        (a partial sum per frame chunk, added), nothing computed here.
        Coordinates of `frames` not along `dim` are kept; attrs
        ``pixel_size`` (m), ``energy``, ``detector``, ``source`` ... are carried,
        ``signal="sum"`` and one more ``history`` line.

    Raises
    ------
    OptionError
        `frames` has no `dim`, no frames along it, or is not numeric.

    Examples
    --------
    >>> frames = xr.DataArray(np.ones((3, 2, 2), np.uint16), dims=("frame", "y", "x"))
    >>> out = accumulate(frames)
    >>> out["sum"].values.tolist(), int(out["count"])
    ([[3, 3], [3, 3]], 3)
    """
    _check(frames, dim)
    dtype = sum_dtype(frames.dtype)
    data = masked(frames.data, mask_negative)
    axis = frames.get_axis_num(dim)
    kept = [d for d in frames.dims if d != dim]
    coords = {k: v for k, v in frames.coords.items() if dim not in v.dims}
    total = xr.DataArray(sum_frames(data, axis=axis, dtype=dtype), dims=kept, coords=coords)
    line = f"accumulate: {frames.sizes[dim]} frames along {dim!r}, mask_negative={mask_negative}"
    return _result(frames, total, ((), np.int64(frames.sizes[dim])), f"sum over {dim}", line)


def running_sum(
    frames: xr.DataArray, *, dim: str = "frame", mask_negative: bool = False
) -> xr.Dataset:
    """The accumulated image after every frame: cumulative sum along `dim`.

    Parameters
    ----------
    frames : DataArray (frame, y, x)
        As for `accumulate`.
    dim : str
        The dim to accumulate along.
    mask_negative : bool
        As for `accumulate`.

    Returns
    -------
    Dataset
        ``sum (frame, y, x)`` (dtype as for `accumulate`; ``sum[i]`` is the sum
        of frames ``0..i``) and ``count (frame)`` = 1, 2, ... n. Lazy: dask's
        blockwise cumulative sum, each chunk adds the running total of the
        chunks before it. All coordinates of `frames` are kept.

    Examples
    --------
    >>> frames = xr.DataArray(np.ones((3, 1, 1)), dims=("frame", "y", "x"))
    >>> running_sum(frames)["sum"].values.ravel().tolist()
    [1.0, 2.0, 3.0]
    """
    _check(frames, dim)
    dtype = sum_dtype(frames.dtype)
    data = masked(frames.data, mask_negative)
    axis = frames.get_axis_num(dim)
    cumsum = da.cumsum if isinstance(data, da.Array) else np.cumsum
    total = frames.copy(data=cumsum(data, axis=axis, dtype=dtype))
    n = frames.sizes[dim]
    line = f"running_sum: {n} frames along {dim!r}, mask_negative={mask_negative}"
    return _result(frames, total, (dim, np.arange(1, n + 1)), f"cumulative sum over {dim}", line)


class Accumulator:
    """The live accumulated image: frames are added while it runs.

    drp-femtomax's reducer keeps its accumulator across scans (in the pipeline's
    context), so a weak signal keeps building up when a scan ends; this object
    is meant to be kept the same way, and nothing here resets it at a scan
    boundary. It resets itself only when a frame cannot be added to the sum: a
    different shape, crop or pixel size (the original's ``IncompatibleImages``,
    on which it starts again from that frame).

    Differences from the original, on purpose: `count` is the number of frames
    actually in `image` (the original starts at 1 with a 100 x 100 placeholder of
    zeros before the first frame); `stop` pauses, keeping the sum (the original,
    with integration off, replaces its image by each new frame, losing the sum),
    and the latest frame offered is `last` either way.

    Thread-safe: every method takes one lock, so a replay thread can `add` while
    a viewer's periodic callback reads `snapshot`.

    Parameters
    ----------
    pixel_size : float, optional
        Detector pixel pitch in m (Balor 12e-6, Zyla 6.5e-6, Pilatus 172e-6),
        kept in the attrs of `to_dataset` for q-curve overlays; a frame given as
        a DataArray brings its own in ``attrs["pixel_size"]``.
    running : bool
        Start accumulating at once.
    mask_negative : bool
        As for `accumulate`.

    Examples
    --------
    >>> acc = Accumulator(pixel_size=172e-6, running=True)
    >>> acc.add(np.ones((2, 2), np.float32)), acc.add(np.ones((2, 2), np.float32))
    (True, True)
    >>> acc.count, acc.image.tolist()
    (2, [[2.0, 2.0], [2.0, 2.0]])
    >>> acc.add(np.ones((3, 3))), acc.count  # a new shape: the documented reset
    (True, 1)
    """

    def __init__(
        self, *, pixel_size: float | None = None, running: bool = False, mask_negative=False
    ):
        self._lock = threading.Lock()
        self._running = running
        self._mask_negative = mask_negative
        self.pixel_size = pixel_size
        self._sum: np.ndarray | None = None
        self._count = 0
        self._crop: tuple | None = None
        self._last: np.ndarray | None = None
        self.resets = 0  # automatic resets (shape, crop or pixel size changed)

    # -- control ----------------------------------------------------------------------

    def start(self) -> None:
        """Add the frames that arrive from now on (to the sum so far)."""
        with self._lock:
            self._running = True

    def stop(self) -> None:
        """Stop adding frames; the sum and count stay as they are."""
        with self._lock:
            self._running = False

    def reset(self) -> None:
        """Forget the sum: the next added frame starts a new one."""
        with self._lock:
            self._sum, self._count, self._crop = None, 0, None

    # -- data -------------------------------------------------------------------------

    def add(self, frame, *, crop: Sequence[int] | None = None) -> bool:
        """Offer one frame; add it to the sum if running.

        Parameters
        ----------
        frame : ndarray or DataArray (y, x)
            The frame (a DataArray's ``attrs["pixel_size"]`` is used when given).
        crop : sequence of int, optional
            Where `frame` was cut from the full detector image, as the original's
            ``CleanImage``: margins ``(top, right, bottom, left)`` in pixels.
            ``None`` for a full frame.

        Returns
        -------
        bool
            True when the frame was added, False when stopped (it is still `last`).
        """
        pixel_size = self.pixel_size
        if isinstance(frame, xr.DataArray):
            pixel_size = frame.attrs.get("pixel_size", pixel_size)
            frame = frame.values
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise OptionError(
                f"Accumulator.add: expected one frame (y, x), got shape {frame.shape}"
            )
        values = masked(frame, self._mask_negative)
        dtype = sum_dtype(frame.dtype)
        crop = None if crop is None else tuple(int(c) for c in crop)
        with self._lock:
            self._last = frame
            if not self._running:
                return False
            compatible = (
                self._sum is not None
                and self._sum.shape == values.shape
                and self._crop == crop
                and self.pixel_size == pixel_size
            )
            if compatible:
                dtype = np.result_type(self._sum, dtype)  # float frames after integer ones
                if self._sum.dtype != dtype:
                    self._sum = self._sum.astype(dtype)
                np.add(self._sum, values, out=self._sum)  # in place, no converted copy
                self._count += 1
            else:
                self.resets += self._sum is not None
                self._sum, self._count, self._crop = values.astype(dtype), 1, crop
                self.pixel_size = pixel_size
            return True

    @property
    def running(self) -> bool:
        """Whether `add` adds frames."""
        return self._running

    @property
    def count(self) -> int:
        """Frames in the sum."""
        return self._count

    @property
    def crop(self) -> tuple | None:
        """The crop ``(top, right, bottom, left)`` of the frames in the sum."""
        return self._crop

    @property
    def image(self) -> np.ndarray | None:
        """A copy of the accumulated image (None before the first frame)."""
        return self.snapshot()[0]

    @property
    def last(self) -> np.ndarray | None:
        """The latest frame offered to `add`, added or not."""
        return self._last

    def snapshot(self) -> tuple[np.ndarray | None, int]:
        """``(image copy, count)`` taken together, consistent even while frames arrive."""
        with self._lock:
            return (None if self._sum is None else self._sum.copy()), self._count

    def to_dataset(self, attrs: Mapping | None = None) -> xr.Dataset:
        """The state as `accumulate` returns it: ``sum (y, x)``, ``count``, attrs ``pixel_size``.

        Raises
        ------
        OptionError
            Before the first frame was added.
        """
        image, count = self.snapshot()
        if image is None:
            raise OptionError("Accumulator: no frame accumulated yet")
        extra = {"pixel_size": self.pixel_size} if self.pixel_size is not None else {}
        if self._crop is not None:
            extra["crop"] = list(self._crop)
        return xr.Dataset(
            {
                "sum": (("y", "x"), image, {"long_name": "sum over frame"}),
                "count": ((), np.int64(count), {"units": "1", "long_name": "frames"}),
            },
            attrs={**(attrs or {}), **extra, "signal": "sum"},
        )
