"""ROI means per motor step: the mean and spread of per-frame ROI means within each scan point.

drp-femtomax's reducer publishes, for every ROI, the mean and standard deviation
(``np.std``, ddof=0) of the per-frame ROI means of each scan point, with the
point's motor position as x axis, and plots them with error bars. A frame's
point comes from the motor stream: the cbor-stream reader gives each frame a
``step`` coordinate (the point number, -1 for frames after the last motor
record) and one coordinate per motor with the point's position, assigning
frames to points as the reducer does (see `beamcat.catalog.cbor_stream`).

`step_means` is the offline function; `StepMeans` accumulates the same table
live, frame by frame, and gives the same numbers (both call `_step_stats`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from beamcat.analyses._frames import pick
from beamcat.analyses._history import carried, history
from beamcat.errors import OptionError

__all__ = ["StepMeans", "step_means"]


def _step_stats(values: np.ndarray, inverse: np.ndarray, n_steps: int) -> np.ndarray:
    """Mean and population std (ddof=0) per step: ``(..., frame)`` -> ``(..., step, 2)``.

    `inverse` ``(frame,)`` is each frame's step index in ``0..n_steps-1``. Two
    passes (mean, then squared deviations from it) as ``np.std`` does; a NaN
    frame makes its step's mean and std NaN, as ``np.mean`` of the original does.
    """
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    rows = np.arange(flat.shape[0])[:, None] * n_steps
    index = (rows + inverse[None, :]).ravel()  # one bin per (row, step)
    size = flat.shape[0] * n_steps
    counts = np.bincount(inverse, minlength=n_steps)
    mean = np.bincount(index, flat.ravel(), minlength=size).reshape(-1, n_steps) / counts
    deviation = flat - mean[:, inverse]
    m2 = np.bincount(index, (deviation**2).ravel(), minlength=size).reshape(-1, n_steps)
    out = np.stack([mean, np.sqrt(m2 / counts)], axis=-1)
    return out.reshape((*lead, n_steps, 2))


def _per_step(values: np.ndarray, inverse: np.ndarray, first: np.ndarray) -> np.ndarray | None:
    """A frame coordinate per step: its value if constant within every step, else None."""
    picked = values[first]
    nan_aware = values.dtype.kind in "fcmM"
    if np.array_equal(values, picked[inverse], equal_nan=nan_aware):
        return picked
    return None


def _steps(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted step labels, each frame's step index, the first frame of each step, counts."""
    steps, first, inverse, counts = np.unique(
        labels, return_index=True, return_inverse=True, return_counts=True
    )
    return steps, inverse.ravel(), first, counts


def _frame_values(means: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if not isinstance(means, xr.Dataset | xr.DataArray):
        raise OptionError(
            f"step_means: expected ROI means (a Dataset or DataArray), got {type(means).__name__}"
        )
    return pick(means, default="mean", what="per-frame means")


def _along(values: xr.DataArray, dim: str) -> dict:
    """The coordinates along `dim` alone, but ``step``."""
    return {k: c for k, c in values.coords.items() if c.dims == (dim,) and k != "step"}


def _labels(values: xr.DataArray, dim: str, motor) -> np.ndarray:
    """Each frame's step: the ``step`` coordinate, or the frame index when it has no points."""
    step = values.coords.get("step")
    if step is not None and step.dims != (dim,):
        raise OptionError(f"the 'step' coordinate lies along {step.dims}, expected ({dim!r},)")
    if step is not None and (step.values >= 0).any():
        return step.values
    if motor is not None:
        raise OptionError(
            f"motor={motor!r}: no 'step' coordinate with scan points to group the frames by; "
            "open the recording with its motor stream"
        )
    return np.arange(values.sizes[dim])


def _lazy_step_stats(data, inverse: np.ndarray, n_steps: int):
    """`_step_stats` of NumPy data, or one dask task per chunk of the leading dims."""
    if not isinstance(data, da.Array):
        return _step_stats(np.asarray(data), inverse, n_steps)
    data = data.rechunk({data.ndim - 1: -1})
    return da.map_blocks(
        _step_stats,
        data,
        inverse=inverse,
        n_steps=n_steps,
        chunks=(*data.chunks[:-1], (n_steps,), (2,)),
        new_axis=data.ndim,
        dtype=np.float64,
        meta=np.empty((0,) * (data.ndim + 1), np.float64),
    )


def step_means(
    means: xr.Dataset | xr.DataArray,
    *,
    motor: str | Sequence[str] | None = None,
    dim: str = "frame",
) -> xr.Dataset:
    """Mean and standard deviation of per-frame ROI means within each motor step.

    Parameters
    ----------
    means : Dataset or DataArray (roi, frame)
        Per-frame ROI means, e.g. `beamcat.analyses.roi.roi_means` output (its
        ``mean``), with a ``step`` coordinate along `dim` (the scan point of each
        frame, -1 for none) and motor position coordinates, as the cbor-stream
        reader gives them. Any other leading dims are kept.
    motor : str or sequence of str, optional
        Motor coordinates (along `dim`) to give per step, e.g. ``"dummy_mot_01"``:
        the position when constant within the step, else its mean. By default
        every coordinate along `dim` that is constant within every step (the
        motor positions; the frame's time and number too when each frame is its
        own step).
    dim : str
        The frame dim.

    Returns
    -------
    Dataset
        Over ``(roi, step)``: ``mean`` (mean of the frames' ROI means in the step),
        ``std`` (their population standard deviation, ddof=0 like the original's
        ``np.std``), ``count (step)`` (frames in the step); coordinate ``step``
        (the point numbers), the motor positions ``(step,)`` and the ROI
        coordinates. Frames with step -1 (after the last motor record) are left
        out. Without a ``step`` coordinate, or with no frame in any step (a
        recording opened without its motor stream), every frame is its own step
        (the original's x axis is then the frame number): ``step`` is the frame
        index, ``std`` 0, and the frame's coordinates are carried.
        Dask-backed when `means` is: one task per ROI chunk, over the whole
        ``(roi, frame)`` table, which is small (8 bytes per ROI and frame).

    Raises
    ------
    OptionError
        `means` has no `dim` or no frames; `motor` is not a coordinate along
        `dim`, or is given while there is no ``step`` coordinate.

    Examples
    --------
    >>> m = xr.DataArray(
    ...     [[1.0, 3.0, 5.0, 5.0]],
    ...     dims=("roi", "frame"),
    ...     coords={"step": ("frame", [0, 0, 1, 1]), "theta": ("frame", [1.0, 1.0, 2.0, 2.0])},
    ... )
    >>> out = step_means(m)
    >>> out["mean"].values.tolist(), out["std"].values.tolist(), out["theta"].values.tolist()
    ([[2.0, 5.0]], [[1.0, 0.0]], [1.0, 2.0])
    """
    values = _frame_values(means)
    if dim not in values.dims or values.sizes[dim] == 0:
        where = values.attrs.get("source", "means")
        raise OptionError(
            f"{where}: expected per-frame means along {dim!r}, got {dict(values.sizes)}"
        )
    motors = [motor] if isinstance(motor, str) else list(motor or [])
    for name in motors:
        if name not in _along(values, dim):
            raise OptionError(
                f"motor={name!r}: not a coordinate along {dim!r}; "
                f"coordinates are {sorted(_along(values, dim))}"
            )
    labels = _labels(values, dim, motor)
    keep = np.nonzero(labels >= 0)[0]
    if keep.size < labels.size:
        values = values.isel({dim: keep})
        labels = labels[keep]
    steps, inverse, first, counts = _steps(labels)
    other = [d for d in values.dims if d != dim]
    values = values.transpose(*other, dim)
    stats = _lazy_step_stats(values.data, inverse, len(steps))

    coords = {k: c for k, c in values.coords.items() if dim not in c.dims}
    coords["step"] = ("step", steps, {"long_name": "scan point"})
    for name, coord in _along(values, dim).items():
        value = _per_step(coord.values, inverse, first)
        if value is None and name in motors:
            value = np.bincount(inverse, coord.values.astype(np.float64)) / counts
        if value is not None and (name in motors or not motors):
            coords[name] = ("step", value, coord.attrs)
    dims = (*other, "step")
    units = {"units": values.attrs["units"]} if "units" in values.attrs else {}
    label = values.attrs.get("long_name", values.name or "per-frame means")
    attrs = carried(values.attrs)
    line = f"step_means: {len(steps)} steps of {labels.size} frames, motor={motor!r}"
    attrs.update(signal="mean", history=history(values.attrs, line))
    return xr.Dataset(
        {
            "mean": (dims, stats[..., 0], {**units, "long_name": f"step mean of {label}"}),
            "std": (
                dims,
                stats[..., 1],
                {**units, "long_name": f"standard deviation (ddof=0) of {label} in the step"},
            ),
            "count": ("step", counts.astype(np.int64), {"units": "1", "long_name": "frames"}),
        },
        coords=coords,
        attrs=attrs,
    )


class StepMeans:
    """ROI means per motor step, built frame by frame for a live plot with error bars.

    Each `add` records one frame's ROI means with its scan point and motor
    positions; `to_dataset` gives the table `step_means` would give for the
    frames so far (same numbers, same function). The per-frame values are kept
    (8 bytes per ROI and frame), so the table is always exact, including the
    last, still-growing step.

    A different set of ROI names than the frames so far (ROIs drawn, deleted or
    renamed) starts a new table: the documented reset. Moving a ROI keeps its
    name, so call `reset` then. Thread-safe (one lock) for a replay thread
    adding while a viewer callback reads.

    Examples
    --------
    >>> live = StepMeans()
    >>> for value, step in [(1.0, 0), (3.0, 0), (5.0, 1)]:
    ...     _ = live.add({"ROI 1": value}, step=step, motors={"theta": 1.0 + step})
    >>> table = live.to_dataset()
    >>> table["mean"].values.tolist(), table["std"].values.tolist(), table["theta"].values.tolist()
    ([[2.0, 5.0]], [[1.0, 0.0]], [1.0, 2.0])
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every frame."""
        with self._lock:
            self._rois: tuple[str, ...] = ()
            self._values = np.empty((0, 0))  # (capacity, roi), the first `_n` rows used
            self._steps = np.empty(0, np.int64)
            self._motors: dict[str, np.ndarray] = {}
            self._n = 0

    def add(
        self,
        means: Mapping[str, float] | xr.DataArray,
        *,
        step: int,
        motors: Mapping[str, float] | None = None,
    ) -> bool:
        """Record one frame's ROI means.

        Parameters
        ----------
        means : mapping ROI name -> float, or DataArray (roi,)
            The frame's ROI means (`roi_means` of the frame, or the original's
            ``crop.clip(min=0).mean()`` per ROI).
        step : int
            The frame's scan point (`beamcat.catalog.cbor_stream.StreamEvent.step`);
            a frame with step < 0 is not recorded. Pass the frame number when
            there is no motor stream (every frame its own step, as offline).
        motors : mapping motor name -> position, optional
            The point's motor positions (``StreamEvent.motors``).

        Returns
        -------
        bool
            Whether the frame was recorded.
        """
        if isinstance(means, xr.DataArray):
            means = dict(zip(map(str, means["roi"].values), means.values.tolist(), strict=True))
        if step < 0:
            return False
        rois = tuple(means)
        motors = dict(motors or {})
        with self._lock:
            if rois != self._rois or set(motors) != set(self._motors):
                self._rois, self._n = rois, 0  # a new ROI set or scan: a new table
                self._values = np.empty((0, len(rois)))
                self._motors = {k: np.empty(0) for k in motors}
            if self._n == len(self._values):  # grow by doubling: amortised O(1) per frame
                size = max(16, 2 * self._n)
                self._values = np.resize(self._values, (size, len(rois)))
                self._steps = np.resize(self._steps, size)
                self._motors = {k: np.resize(v, size) for k, v in self._motors.items()}
            self._values[self._n] = [means[r] for r in rois]
            self._steps[self._n] = step
            for k, v in motors.items():
                self._motors[k][self._n] = v
            self._n += 1
        return True

    @property
    def count(self) -> int:
        """Frames recorded."""
        return self._n

    def to_dataset(self) -> xr.Dataset:
        """The table so far, as `step_means` returns it: mean, std (roi, step), count (step).

        Raises
        ------
        OptionError
            Before the first frame.
        """
        with self._lock:
            n = self._n
            if n == 0:
                raise OptionError("StepMeans: no frame recorded yet")
            values = self._values[:n].T.copy()
            coords = {"roi": list(self._rois), "step": ("frame", self._steps[:n].copy())}
            coords.update({k: ("frame", v[:n].copy()) for k, v in self._motors.items()})
        return step_means(xr.DataArray(values, dims=("roi", "frame"), coords=coords))
