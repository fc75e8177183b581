"""What the diffraction pages compute, off the event loop: geometries, q-curves, masks, patterns.

Shared by the Diffraction page, the Live page's geometry panel and the Gain map
page. Everything here takes and returns NumPy-backed objects (the pages call it
in worker threads and draw the results on the event loop):

- `manual_geometry`: a geometry from what a user reads off a detector (distance,
  beam centre, pixel size, energy), through pyFAI's Fit2D convention;
- `ring_table` / `ring_curves`: the rings of a calibrant, or of a list of q
  values, and their polylines on the detector (`beamcat.analyses.calibrant`);
- `build_mask`: invalid pixels, a threshold and drawn rectangles as one mask;
- `entry_image`: the mean image of a catalog entry and the geometry it carries.

Examples
--------
>>> geo = manual_geometry(100.0, 50.0, 40.0, 172.0, 12000.0)
>>> round(geo.integrator.dist, 3), round(geo.energy)
(0.1, 12000)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from beamcat.analyses.calibrant import rings
from beamcat.analyses.geometry import Geometry, as_geometry, check_shape, read_poni
from beamcat.apps.quicklook import signal_name
from beamcat.apps.state import CatalogContext
from beamcat.errors import OptionError
from beamcat.rois import Rect

__all__ = [
    "CALIBRANTS",
    "Q_VALUES",
    "Curve",
    "build_mask",
    "chosen_geometry",
    "ring_curves",
    "ring_table",
    "entry_image",
    "manual_geometry",
    "parse_q_values",
    "with_energy",
]

#: calibrants offered by the pages (pyFAI's names; pyFAI ships their d-spacings)
CALIBRANTS = ("LaB6", "CeO2", "Si", "Au", "AgBh", "alpha_Al2O3", "Cr2O3", "Ni", "Pt", "ZnO")
#: the calibrant choice that draws the curves of typed q values instead
Q_VALUES = "q values"
#: at most this many rings are drawn (the innermost)
MAX_CURVES = 24


def manual_geometry(
    distance_mm: float,
    centre_x: float,
    centre_y: float,
    pixel_um: float,
    energy_ev: float | None,
) -> Geometry:
    """The geometry of an untilted detector from its distance, beam centre and pixel size.

    Parameters
    ----------
    distance_mm : float
        Sample-detector distance along the beam, mm.
    centre_x, centre_y : float
        Beam centre in pixels, as the image axes show it: pixel ``i`` spans
        ``[i, i + 1)``, so the centre of pixel (col, row) is (col + 0.5, row + 0.5).
    pixel_um : float
        Pixel size, µm (square pixels).
    energy_ev : float or None
        Photon energy, eV (None: a geometry without wavelength, which has no q).

    Returns
    -------
    Geometry
        pyFAI's Fit2D conversion (``setFit2D``), no tilt, not flipped.

    Raises
    ------
    OptionError
        A non-positive or non-finite distance, pixel size or energy.
    """
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    values = {"distance (mm)": distance_mm, "pixel size (µm)": pixel_um}
    if energy_ev is not None:
        values["energy (eV)"] = energy_ev
    for what, value in values.items():
        if value is None or not math.isfinite(value) or value <= 0:
            raise OptionError(f"geometry: {what} must be a positive number, got {value!r}")
    for what, value in (("beam centre x", centre_x), ("beam centre y", centre_y)):
        if value is None or not math.isfinite(value):
            raise OptionError(f"geometry: {what} (px) must be a number, got {value!r}")
    ai = AzimuthalIntegrator()
    ai.setFit2D(
        float(distance_mm), float(centre_x), float(centre_y), pixelX=pixel_um, pixelY=pixel_um
    )
    if energy_ev is not None:
        ai.energy = float(energy_ev) / 1000.0  # keV
    return as_geometry(ai)


def with_energy(geometry: Geometry, energy_ev: float | None) -> Geometry:
    """`geometry` at another photon energy (eV); None or its own energy: unchanged.

    Raises
    ------
    OptionError
        A non-positive energy.
    """
    from pyFAI.units import hc  # keV·Å

    if energy_ev is None or (geometry.energy and math.isclose(energy_ev, geometry.energy)):
        return geometry
    if not math.isfinite(energy_ev) or energy_ev <= 0:
        raise OptionError(f"energy must be a positive number of eV, got {energy_ev!r}")
    return geometry.with_(wavelength=hc / energy_ev * 1e-7)


def chosen_geometry(
    entry_geometry: Geometry | None,
    poni: str | None,
    *,
    flip: bool,
    energy_ev: float | None,
    shape: tuple[int, int],
    name: str = "the entry",
) -> Geometry:
    """The geometry a page uses: a PONI file, else the entry's; flip and energy as chosen.

    Parameters
    ----------
    entry_geometry : Geometry or None
        The one the entry carries (``poni=``).
    poni : str or None
        A PONI file typed by the user: it wins.
    flip : bool
        The PONI refers to the image flipped vertically (Dioptas).
    energy_ev : float or None
        Replaces the PONI's wavelength.
    shape : (ny, nx)
        The image's: a PONI of another detector is refused.
    name : str
        The entry, for messages.

    Raises
    ------
    OptionError
        No PONI at all.
    BeamcatError
        An unreadable PONI, or one of another detector shape.
    """
    if poni:
        geometry = read_poni(poni, flip=flip)
    elif entry_geometry is not None:
        geometry = as_geometry(entry_geometry, flip=flip)
    else:
        raise OptionError(f"{name} carries no PONI (poni=): give the path of a PONI file")
    check_shape(geometry, shape, name)
    return with_energy(geometry, energy_ev)


def parse_q_values(text: str) -> tuple[float, ...]:
    """The q values typed: numbers (nm^-1) separated by commas or spaces.

    Raises
    ------
    OptionError
        A word that is not a positive number.

    Examples
    --------
    >>> parse_q_values("15.1, 21.4  26.2")
    (15.1, 21.4, 26.2)
    """
    out = []
    for word in re.split(r"[,;\s]+", text.strip()):
        if not word:
            continue
        try:
            q = float(word)
        except ValueError:
            q = math.nan
        if not math.isfinite(q) or q <= 0:
            raise OptionError(f"q values: {word!r} is not a positive number (nm^-1)")
        out.append(q)
    return tuple(out)


@dataclass(frozen=True)
class Curve:
    """One ring on the detector.

    Attributes
    ----------
    label : str
        What it is: ``"LaB6 (1 0 0)"``, or ``"q = 15.1 nm⁻¹"`` for typed values.
    q : float
        Its q, nm^-1.
    tth : float
        Its 2θ, degrees.
    xy : ndarray (n, 2)
        Its polylines on the detector (x the column, y the row of the raw image,
        pixel centres at integer values), each followed by a NaN row.
    """

    label: str
    q: float
    tth: float
    xy: np.ndarray


def ring_table(
    geometry: Geometry,
    shape: tuple[int, int],
    *,
    calibrant: str = "LaB6",
    q_values: Sequence[float] = (),
    max_curves: int = MAX_CURVES,
) -> xr.Dataset | None:
    """The rings of a calibrant, or of typed q values, on the detector, with their contours.

    Parameters
    ----------
    geometry : Geometry
        Must have a wavelength.
    shape : (ny, nx)
    calibrant : str
        A pyFAI calibrant name, or `Q_VALUES` for the rings of `q_values`.
    q_values : sequence of float
        q in nm^-1 (with ``calibrant=Q_VALUES``).
    max_curves : int
        The innermost rings only.

    Returns
    -------
    Dataset or None
        `beamcat.analyses.calibrant.rings` of the rings on the detector (``d``,
        ``tth``, ``q``, ``hkl`` along ``ring``; ``contour_x``, ``contour_y``,
        ``contour_ring`` along ``vertex``); None for `Q_VALUES` without values.

    Raises
    ------
    OptionError
        No wavelength in the geometry, an unknown calibrant.
    """
    if geometry.wavelength is None:
        raise OptionError(f"{geometry.name}: no wavelength; enter the energy to draw q-curves")
    if calibrant == Q_VALUES:
        if not q_values:
            return None
        source = [20 * math.pi / q for q in q_values]  # d in Angstrom of q in nm^-1
    else:
        source = calibrant
    return rings(source, geometry=geometry, shape=shape, n_rings=max_curves)


def ring_curves(table: xr.Dataset | None) -> list[Curve]:
    """The rings of a `ring_table` one by one, named, those on the detector only."""
    if table is None:
        return []
    owner = table["contour_ring"].values  # numbers the rings of the table in order
    xy = np.column_stack([table["contour_x"].values, table["contour_y"].values])
    typed = table.attrs.get("calibrant") == "d-spacings"
    curves = []
    for k, (q, tth, hkl) in enumerate(
        zip(table["q"].values, table["tth"].values, table["hkl"].values, strict=True)
    ):
        if typed:
            label = f"q = {q:.4g} nm⁻¹"
        else:
            label = f"{table.attrs['calibrant']} {hkl or f'ring {k + 1}'}"
        curves.append(Curve(label, float(q), float(tth), xy[owner == k]))
    return [c for c in curves if len(c.xy)]


def build_mask(
    image: np.ndarray,
    *,
    low: float | None = None,
    high: float | None = None,
    regions: Mapping[str, Rect] | Sequence[Rect] = (),
) -> np.ndarray:
    """Pixels left out of the integration: invalid, outside a threshold, or in a drawn region.

    Parameters
    ----------
    image : ndarray (y, x)
    low, high : float, optional
        Pixels below `low` or above `high` are masked (hot pixels, a beam stop).
    regions : mapping name -> Rect, or sequence of Rect
        Rectangles ``[y:y+h, x:x+w]`` masked (clipped to the image).

    Returns
    -------
    ndarray (y, x) bool
        True where masked: NaN and negative pixels (Pilatus gaps read -1 and -2),
        the threshold and the regions.

    Examples
    --------
    >>> image = np.array([[1.0, -1.0, 5.0], [2.0, 50.0, 3.0]])
    >>> build_mask(image, high=10, regions=[Rect(2, 0, 1, 1)]).astype(int).tolist()
    [[0, 1, 1], [0, 1, 0]]
    """
    image = np.asarray(image)
    mask = ~(image >= 0)  # NaN and negatives
    if low is not None:
        mask |= image < low
    if high is not None:
        mask |= image > high
    rects = regions.values() if isinstance(regions, Mapping) else regions
    for x, y, w, h in rects:
        mask[max(int(y), 0) : max(int(y + h), 0), max(int(x), 0) : max(int(x + w), 0)] = True
    return mask


def entry_image(
    context: CatalogContext, name: str, *, frames: int | None = None
) -> tuple[xr.DataArray, Geometry | None]:
    """An entry's mean image (y, x), computed, and the geometry it carries (``poni=``).

    Parameters
    ----------
    context : CatalogContext
    name : str
        Catalog entry of images (``(..., y, x)``).
    frames : int, optional
        Average the first `frames` frames only (all by default).

    Returns
    -------
    image : DataArray (y, x) float64
        Mean over every leading dim, negative pixels kept (they are masked later).
    geometry : Geometry or None
        From the entry's ``attrs["poni"]`` and ``attrs["poni_flip"]``, checked
        against the image's shape; None when the entry has none.

    Raises
    ------
    OptionError
        The entry has no ``(y, x)`` image.
    BeamcatError
        The entry or its PONI cannot be read, or the PONI's detector has another shape.
    """
    ds = context.open(name)
    signal = ds[signal_name(ds)]
    if signal.dims[-2:] != ("y", "x"):
        raise OptionError(f"entry {name!r}: expected images (..., y, x), got dims {signal.dims}")
    lead = [d for d in signal.dims if d not in ("y", "x")]
    if frames is not None and lead:
        signal = signal.isel({lead[0]: slice(0, frames)})
    image = signal.astype("f8").mean(lead) if lead else signal.astype("f8")
    image = image.compute().assign_attrs(source=ds.attrs.get("source", name))
    geometry = None
    if ds.attrs.get("poni") is not None:
        geometry = as_geometry(ds)
        check_shape(geometry, image.shape, f"entry {name!r}")
    return image, geometry
