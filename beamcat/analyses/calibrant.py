"""Calibrant rings and detector calibration without a GUI (pyFAI's control points and refinement).

- `rings`: the reflections of a calibrant (a name pyFAI ships, ``"CeO2"``,
  ``"LaB6"``, ``"Si"``, ``"Au"`` ..., or d-spacings in Angstrom) at an energy:
  d, 2θ, q and hkl along ``ring``; given a geometry and an image shape, also
  each ring's contour on the detector, for overlays (q-curves).
- `ring_contours`: those contours, polylines in raw-image pixel coordinates.
- `calibrate`: refine distance, PONI and rotations from a calibrant image, as
  pyFAI-calib2's "recalib" does it: extract control points on the rings the
  current geometry predicts (pyFAI's ``SingleGeometry.extract_cp``, its massif
  peak search), refine (``GeometryRefinement.refine3``), take more rings,
  repeat. One pass from a start a few mm off does not converge; a growing
  number of rings does. The wavelength is known and stays fixed.
- `beam_centre`: where the direct beam hits, in raw-image pixel coordinates
  (the inverse of a ``{"distance", "centre"}`` start).

Pixel coordinates are ``x`` (column) and ``y`` (row) of the image as the reader
returns it, pixel centres at integer indices; a geometry with ``flip=True``
(Dioptas' view, see `beamcat.analyses.geometry`) is honoured, so contours and
control points always line up with the raw array.

Examples
--------
>>> table = rings("CeO2", 30000.0, n_rings=2)
>>> table["hkl"].values.tolist(), table["tth"].round(3).values.tolist()
(['(1 1 1)', '(0 0 2)'], [7.584, 8.76])
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

from beamcat.analyses.geometry import Geometry, as_geometry, check_shape, pixel_array
from beamcat.errors import OptionError

__all__ = ["Calibration", "beam_centre", "calibrate", "ring_contours", "rings"]

#: rings used in the first extraction (rotations fixed in that pass)
FIRST_RINGS = 3
#: each further pass takes about this many times more rings
RING_GROWTH = 1.6
#: control points pyFAI keeps per azimuthal degree of a ring
POINTS_PER_DEGREE = 1.0
_ROTATIONS = ("rot1", "rot2", "rot3")


def _pyfai_names() -> dict[str, str]:
    from pyFAI.calibrant import CALIBRANT_FACTORY

    return {name.lower(): name for name in CALIBRANT_FACTORY.keys()}


def _wavelength(energy, geometry: Geometry | None) -> float:
    """The wavelength in m from `energy` (eV), else the geometry's; OptionError when neither."""
    if energy is not None:
        try:
            value = float(energy)
        except (TypeError, ValueError):
            value = np.nan
        if not value > 0 or not np.isfinite(value):
            raise OptionError(f"energy must be a positive number of eV, got {energy!r}")
        return _energy(value)  # λ·E = hc both ways
    if geometry is not None and geometry.wavelength:
        return float(geometry.wavelength)
    where = f"and {geometry.name} has no wavelength" if geometry is not None else "and no geometry"
    raise OptionError(f"no energy: pass energy= in eV ({where})")


def _energy(wavelength: float) -> float:
    """Photon energy in eV of a wavelength in m."""
    from pyFAI.units import CONST_hc  # keV·Å

    return CONST_hc * 1e-7 / wavelength


def _reflections(calibrant, wavelength: float):
    """The reachable reflections: pyFAI Calibrant, d (Å, descending, unique), hkl labels."""
    from pyFAI.calibrant import Calibrant

    if isinstance(calibrant, str):
        name = _pyfai_names().get(calibrant.lower())
        if name is None:
            raise OptionError(
                f"unknown calibrant {calibrant!r}; pyFAI ships {sorted(_pyfai_names().values())}, "
                "or pass d-spacings in Angstrom"
            )
        from pyFAI.calibrant import get_calibrant

        loaded = get_calibrant(name)
        d = np.asarray(loaded.dspacing, dtype=np.float64)
        labels = [str(r.hkl) if r.hkl is not None else "" for r in loaded.config.reflections]
    else:
        name = None
        try:
            d = np.atleast_1d(np.asarray(calibrant, dtype=np.float64))
        except (TypeError, ValueError):
            raise OptionError(
                f"a calibrant is a name or d-spacings in Angstrom, got {calibrant!r}"
            ) from None
        if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d) & (d > 0)):
            raise OptionError(f"d-spacings must be positive numbers in Angstrom, got {calibrant!r}")
        labels = [""] * d.size
    # one ring per distinct d (pyFAI's extraction numbers the distinct rings), largest d first
    unique, inverse = np.unique(d, return_inverse=True)
    merged = [{} for _ in unique]
    for k, label in zip(inverse, labels, strict=True):
        merged[k][label] = None
    hkl = [", ".join(label for label in m if label) for m in merged[::-1]]
    d = unique[::-1]
    pyfai = Calibrant(dspacing=d.tolist(), wavelength=wavelength)
    reachable = len(pyfai.get_2th())  # pyFAI drops the d-spacings below λ/2
    return pyfai, name, d[:reachable], hkl[:reachable]


def ring_contours(geometry, shape: tuple[int, int], tth_deg) -> list[list[np.ndarray]]:
    """The contours of constant 2θ on the detector, as polylines in raw-image pixel coordinates.

    Marching squares (``contourpy``) on the geometry's 2θ map of pixel centres,
    so a ring is where the map says it is, tilts and orientation included.

    Parameters
    ----------
    geometry : anything `beamcat.analyses.geometry.as_geometry` takes
    shape : (int, int)
        The image shape ``(y, x)``.
    tth_deg : sequence of float
        The 2θ of each contour, deg.

    Returns
    -------
    list of list of ndarray (N, 2)
        Per level, its polylines (none when the ring misses the detector), each
        ``[x, y]`` rows: x the column, y the row of the raw image, pixel
        centres at integer values.

    Examples
    --------
    >>> geo = {"dist": 0.1, "poni1": 0.005, "poni2": 0.005, "detector": "Detector",
    ...        "detector_config": {"pixel1": 1e-4, "pixel2": 1e-4}}
    >>> import math
    >>> [line] = ring_contours(geo, (100, 100), [2.0])[0]  # a closed circle, 2θ = 2° at 0.1 m
    >>> radius = np.hypot(line[:, 0] - 49.5, line[:, 1] - 49.5)
    >>> round(float(radius.mean()), 2), round(0.1 * math.tan(math.radians(2.0)) / 1e-4, 2)
    (34.92, 34.92)
    """
    import contourpy

    tth_map = pixel_array(geometry, shape, "2th_deg")
    generator = contourpy.contour_generator(z=tth_map, line_type=contourpy.LineType.Separate)
    return [list(generator.lines(float(level))) for level in np.atleast_1d(tth_deg)]


def _flat_contours(contours: list[list[np.ndarray]]) -> dict:
    """Every polyline followed by a NaN vertex, with the ring of each vertex (for one plot call)."""
    pieces, owner = [np.empty((0, 2))], [np.empty(0, dtype=np.int64)]
    for ring, lines in enumerate(contours):
        for line in lines:
            pieces += [line, np.full((1, 2), np.nan)]
            owner.append(np.full(len(line) + 1, ring, dtype=np.int64))
    xy, owner = np.concatenate(pieces), np.concatenate(owner)
    units = {"units": "pixel"}
    return {
        "contour_x": ("vertex", xy[:, 0], {**units, "long_name": "ring contour, column"}),
        "contour_y": ("vertex", xy[:, 1], {**units, "long_name": "ring contour, row"}),
        "contour_ring": ("vertex", owner, {"long_name": "ring of each contour vertex"}),
    }


def rings(
    calibrant,
    energy: float | None = None,
    *,
    geometry=None,
    shape: tuple[int, int] | None = None,
    tth_max: float | None = None,
    n_rings: int | None = None,
) -> xr.Dataset:
    """The rings of a calibrant at an energy: d, 2θ, q, hkl; and their contours on a detector.

    Parameters
    ----------
    calibrant : str or sequence of float
        A calibrant pyFAI ships (``"CeO2"``, ``"LaB6"``, ``"Si"``, ``"Au"`` ...,
        ``pyFAI.calibrant.CALIBRANT_FACTORY``; any case), or d-spacings in
        Angstrom. Equal d-spacings are one ring.
    energy : float, optional
        Photon energy in eV; by default the geometry's wavelength.
    geometry : anything `beamcat.analyses.geometry.as_geometry` takes, optional
    shape : (int, int), optional
        The image shape ``(y, x)``; with `geometry`, the rings are those on the
        detector and their contours come too.
    tth_max : float, optional
        Only rings up to this 2θ (deg).
    n_rings : int, optional
        Only the first (lowest-angle) `n_rings`.

    Returns
    -------
    Dataset
        Along ``ring`` (numbered from the lowest angle, as `calibrate`'s
        control points are): ``d`` (Angstrom), ``tth`` (deg), ``q`` (nm^-1),
        ``hkl`` (str, empty where unknown). With geometry and shape, along
        ``vertex``: ``contour_x``, ``contour_y`` (pixel, raw image: x the column,
        y the row) and ``contour_ring``, every polyline followed by a NaN
        vertex, so that one ``plot(contour_x, contour_y)`` draws them all; the
        polylines as lists are `ring_contours`.

    Raises
    ------
    OptionError
        Unknown calibrant, bad d-spacings, no energy (neither given nor in the geometry).
    """
    geo = None if geometry is None else as_geometry(geometry)
    wavelength = _wavelength(energy, geo)
    pyfai, name, d, hkl = _reflections(calibrant, wavelength)
    tth = np.degrees(np.asarray(pyfai.get_2th(), dtype=np.float64))
    q = pyfai.get_peaks("q_nm^-1")
    keep = np.ones(tth.size, dtype=bool)
    if geo is not None and shape is not None:
        keep &= tth <= pixel_array(geo, shape, "2th_deg").max()
    if tth_max is not None:
        keep &= tth <= tth_max
    keep &= np.cumsum(keep) <= (tth.size if n_rings is None else n_rings)
    index = np.flatnonzero(keep)
    data = {
        "d": ("ring", d[index], {"units": "Angstrom", "long_name": "d-spacing"}),
        "tth": ("ring", tth[index], {"units": "deg", "long_name": "scattering angle 2θ"}),
        "q": ("ring", q[index], {"units": "nm^-1", "long_name": "scattering vector q"}),
        "hkl": ("ring", np.array([hkl[i] for i in index], dtype=str), {"long_name": "hkl"}),
    }
    attrs = {
        "calibrant": name or "d-spacings",
        "wavelength": wavelength,
        "energy": _energy(wavelength),
    }
    if geo is not None and shape is not None:
        data.update(_flat_contours(ring_contours(geo, shape, tth[index])))
        attrs["poni_flip"] = int(geo.flip)
        if geo.source:
            attrs["poni"] = geo.source
    return xr.Dataset(data, coords={"ring": index}, attrs=attrs)


def beam_centre(geometry, shape: tuple[int, int]) -> tuple[float, float]:
    """Where the direct beam meets the detector plane, ``(x, y)`` in raw-image pixel coordinates.

    pyFAI's Fit2D centre, moved to beamcat's convention (pixel centres at
    integer indices, the raw image's rows when the geometry is flipped).

    Examples
    --------
    >>> geo = {"dist": 0.1, "poni1": 0.005, "poni2": 0.003, "detector": "Detector",
    ...        "detector_config": {"pixel1": 1e-4, "pixel2": 1e-4}}
    >>> beam_centre(geo, (100, 100))
    (29.5, 49.5)
    """
    geo = as_geometry(geometry)
    fit2d = geo.integrator.getFit2D()
    x, y = fit2d["centerX"] - 0.5, fit2d["centerY"] - 0.5
    if geo.flip:
        y = shape[0] - 1 - y
    return float(x), float(y)


def _start_geometry(start, shape, flip, pixel_size) -> Geometry:
    """The start of `calibrate` as a Geometry (flip applied)."""
    if not (isinstance(start, dict) and ("centre" in start or "center" in start)):
        return as_geometry(start, flip=flip)
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    centre = start.get("centre", start.get("center"))
    distance = start.get("distance")
    size = start.get("pixel_size", pixel_size)
    if size is None:
        raise OptionError(
            "a beam-centre start needs the pixel size: {'pixel_size': m} in it, pixel_size= "
            "or a DataArray with attrs['pixel_size']"
        )
    try:
        x, y = (float(v) for v in centre)
        distance = float(distance)
        py, px = np.broadcast_to(np.asarray(size, dtype=np.float64), (2,))
    except (TypeError, ValueError):
        raise OptionError(
            "a beam-centre start is {'distance': m, 'centre': (x_px, y_px), 'pixel_size': m} "
            f"(pixel_size may be passed to calibrate instead), got {start!r}"
        ) from None
    if not (distance > 0 and py > 0 and px > 0):
        raise OptionError(f"distance and pixel_size must be > 0 m, got {start!r}")
    if flip:
        y = shape[0] - 1 - y
    ai = AzimuthalIntegrator(detector=Detector(pixel1=py, pixel2=px, max_shape=shape))
    ai.setFit2D(distance * 1e3, x + 0.5, y + 0.5, pixelX=px * 1e6, pixelY=py * 1e6)
    return as_geometry(ai.get_config(), flip=bool(flip))


def _image(image) -> np.ndarray:
    array = image.values if isinstance(image, xr.DataArray) else np.asarray(image)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise OptionError(
            f"calibrate needs one 2D image (y, x) of numbers, got shape {array.shape} "
            f"({array.dtype}); average or pick a frame first"
        )
    return array.astype(np.float64)


@dataclass(frozen=True, eq=False)
class Calibration:
    """What `calibrate` found: the refined geometry and the control points it was fitted to.

    Attributes
    ----------
    geometry : Geometry
        Distance, PONI and rotations refined; wavelength and orientation as given.
    rings : Dataset (point)
        The control points of the last pass: ``ring`` (index into `rings`'
        table of the same calibrant and energy), ``x``, ``y`` (pixel, raw
        image), ``tth`` (the ring's 2θ, deg) and ``residual`` (the point's 2θ
        under the refined geometry minus the ring's, deg).
    rms : float
        Root mean square of ``residual``, deg.
    n_rings : int
        Rings that gave control points in the last pass.
    """

    geometry: Geometry
    rings: xr.Dataset
    rms: float
    n_rings: int

    def __repr__(self) -> str:
        config = json.loads(self.geometry.config)
        return (
            f"Calibration(dist={config['dist']:.6g} m, poni1={config['poni1']:.6g} m, "
            f"poni2={config['poni2']:.6g} m, rot=({config['rot1']:.4g}, {config['rot2']:.4g}, "
            f"{config['rot3']:.4g}) rad, {self.rings.sizes['point']} points on "
            f"{self.n_rings} rings, rms {self.rms:.3g} deg)"
        )


def _visible_rings(refinement, shape, valid, tth_rings) -> np.ndarray:
    """The indices of the rings (2θ, rad) that the current geometry puts on valid pixels."""
    from pyFAI.units import TTH_RAD

    tth = refinement.center_array(shape, unit=TTH_RAD, scale=False)[valid]
    return np.flatnonzero((tth_rings >= tth.min()) & (tth_rings <= tth.max()))


def _extracted(single, tried, n_free: int, tth_rings, hkl) -> np.ndarray:
    """Control points (row, column, ring) on the rings `tried`; too few for `n_free`: error."""
    single.extract_cp(max_rings=len(tried), pts_per_deg=POINTS_PER_DEGREE)
    points = np.asarray(single.geometry_refinement.data, dtype=np.float64).reshape(-1, 3)
    found = np.unique(points[:, 2]).size
    if found < 2 or len(points) < 2 * n_free:
        names = ", ".join(
            f"{i}{' ' + hkl[i] if hkl[i] else ''} at {np.degrees(tth_rings[i]):.3f}°" for i in tried
        )
        raise OptionError(
            f"too few control points: {len(points)} on {found} rings (expected at least "
            f"{2 * n_free} on 2 rings); rings tried: {names or 'none, no ring is on the detector'}"
            ". Check the calibrant, the energy, the start geometry and its orientation (flip)"
        )
    return points


@contextlib.contextmanager
def _seeded_numpy_random(seed: int):
    """NumPy's global generator seeded for a while, then restored.

    pyFAI's massif shuffles its candidate peaks with it: seeded, the same image
    gives the same control points and geometry every time.
    """
    state = np.random.get_state()  # noqa: NPY002 - pyFAI draws from the global generator
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _recalib(single, valid, tth_rings, hkl, limit: int) -> np.ndarray:
    """Extract and refine over a growing number of rings; the last pass's control points."""
    refinement = single.geometry_refinement
    shape = valid.shape
    visible = _visible_rings(refinement, shape, valid, tth_rings)[:limit]
    n_rings, previous, first = min(FIRST_RINGS, limit), 0, True
    while True:
        fixed = ["wavelength", *(_ROTATIONS if first else ())]
        points = _extracted(single, visible[:n_rings], 3 if first else 6, tth_rings, hkl)
        refinement.refine3(fix=fixed)
        visible = _visible_rings(refinement, shape, valid, tth_rings)[:limit]
        if n_rings >= len(visible) and previous >= len(visible):
            return points
        previous, first = n_rings, False
        n_rings = min(len(visible), max(n_rings + 2, round(n_rings * RING_GROWTH)))


def calibrate(
    image,
    calibrant,
    *,
    energy: float | None = None,
    start,
    mask=None,
    max_rings: int | None = None,
    flip: bool | None = None,
    pixel_size=None,
) -> Calibration:
    """Refine distance, PONI and rotations from a calibrant image (pyFAI's recalib, no GUI).

    Each pass extracts control points on the rings the current geometry
    predicts (pyFAI's massif peak search in a band of a quarter of the ring
    spacing around each ring) and refines the six parameters to them, the
    wavelength fixed: the first pass uses `FIRST_RINGS` rings with the
    rotations fixed, each further pass about `RING_GROWTH` times more rings,
    until every ring on the detector is used, then one more pass with all.
    pyFAI's peak search shuffles its candidates; NumPy's global generator is
    seeded for the call (and restored), so the result is reproducible.

    Parameters
    ----------
    image : array or DataArray (y, x)
        The calibrant image as the reader returns it (raw orientation).
        Negative and non-finite pixels (Pilatus gaps: -1, -2) are masked.
    calibrant : str or sequence of float
        A calibrant pyFAI ships or d-spacings in Angstrom, as `rings` takes.
    energy : float, optional
        Photon energy in eV; by default the start geometry's wavelength.
    start : PONI path, Geometry, pyFAI integrator or config dict, or dict
        The starting geometry, or a beam-centre start ``{"distance": m,
        "centre": (x_px, y_px)}`` (raw-image pixel coordinates, optional
        ``"pixel_size"`` in m) with the rotations 0.
    mask : bool array (y, x), optional
        True where pixels are bad (raw orientation).
    max_rings : int, optional
        Use at most this many rings.
    flip : bool, optional
        The geometry refers to the image flipped vertically (Dioptas); by
        default the start geometry's own flag (False for a beam-centre start).
    pixel_size : float or (float, float), optional
        Pixel size in m (y, x) for a beam-centre start; by default the start's
        ``"pixel_size"`` or the DataArray's ``attrs["pixel_size"]``.

    Returns
    -------
    Calibration
        ``geometry``, the control points ``rings``, ``rms`` (deg), ``n_rings``.

    Raises
    ------
    OptionError
        Unknown calibrant, no energy, an image that is not 2D, a mask of
        another shape, a beam-centre start without distance or pixel size, too
        few control points (the message lists the rings tried).
    FormatError
        The start PONI is unreadable or its detector has another shape.
    """
    from pyFAI.goniometer import SingleGeometry

    array = _image(image)
    shape = array.shape
    if pixel_size is None and isinstance(image, xr.DataArray):
        pixel_size = image.attrs.get("pixel_size")
    geometry = _start_geometry(start, shape, flip, pixel_size)
    check_shape(geometry, shape, "the calibrant image")
    geometry = geometry.with_(wavelength=_wavelength(energy, geometry))
    pyfai, name, _, hkl = _reflections(calibrant, geometry.wavelength)
    invalid = ~np.isfinite(array) | (array < 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise OptionError(f"the mask is {mask.shape} pixels, the image {shape}")
        invalid |= mask
    if geometry.flip:  # pyFAI works on the image as the PONI sees it
        array, invalid = array[::-1], invalid[::-1]
    view = np.where(invalid, 0.0, array)

    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    single = SingleGeometry(
        "calibrate", view, calibrant=pyfai, geometry=json.loads(geometry.config)
    )
    detector = single.geometry_refinement.detector
    own = detector.mask
    if own is not None and own.shape == shape:
        invalid = invalid | own.astype(bool)
    detector.mask = invalid.astype(np.int8)
    refinement = single.geometry_refinement
    tth_rings = np.asarray(pyfai.get_2th(), dtype=np.float64)
    limit = tth_rings.size if max_rings is None else max(1, int(max_rings))
    with _seeded_numpy_random(0):
        points = _recalib(single, ~invalid, tth_rings, hkl, limit)

    rows, cols, ring = points[:, 0], points[:, 1], points[:, 2].astype(np.int64)
    residual = np.degrees(refinement.tth(rows, cols) - tth_rings[ring])
    y = shape[0] - 1 - rows if geometry.flip else rows
    px = {"units": "pixel"}
    control = xr.Dataset(
        {
            "ring": ("point", ring, {"long_name": "ring index (from the lowest angle)"}),
            "x": ("point", cols, {**px, "long_name": "column"}),
            "y": ("point", y, {**px, "long_name": "row (raw image)"}),
            "tth": ("point", np.degrees(tth_rings[ring]), {"units": "deg", "long_name": "ring 2θ"}),
            "residual": ("point", residual, {"units": "deg", "long_name": "2θ fit residual"}),
        },
        attrs={"calibrant": name or "d-spacings", "wavelength": geometry.wavelength},
    )
    refined = as_geometry(single.get_ai().get_config(), flip=geometry.flip)
    return Calibration(
        geometry=refined,
        rings=control,
        rms=float(np.sqrt(np.mean(residual**2))),
        n_rings=int(np.unique(ring).size),
    )
