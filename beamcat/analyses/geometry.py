"""Detector geometry from a pyFAI PONI: per-pixel 2θ, χ, q, radius, solid angle, polarisation.

pyFAI does the maths; this module gives its geometry a beamcat face:

- `Geometry`: a PONI (pyFAI's configuration dict, v1 or v2 files alike) and an
  orientation flag, hashable so that maps and integration tables are cached per
  (geometry, shape);
- `as_geometry`: a Geometry from a PONI path, a pyFAI integrator, a config dict,
  or a Dataset whose ``attrs["poni"]`` names one (catalog entries with ``poni=``);
- `read_poni` / `write_poni` (atomic), `pixel_array` (one cached map, NumPy) and
  `pixel_maps` (all maps as a Dataset on ``(y, x)`` with units);
- `calibrate` (refine a PONI from a calibrant image) and `rings` (reflections and
  their contours), from `beamcat.analyses.calibrant`.

Orientation. Dioptas shows images flipped vertically (row 0 at the bottom) and
the PONI files it writes refer to that view. ``flip=True`` says so: pyFAI
computes its maps for the flipped image and beamcat flips them back, so every
map lines up with the raw ``(y, x)`` array as the reader returns it. The
Dioptas test image ``CeO2_Pilatus1M.tif`` integrates to sharp CeO2 rings with
its PONI only this way.

Examples
--------
>>> geo = as_geometry({"dist": 0.1, "poni1": 0.01, "poni2": 0.01, "wavelength": 1e-10,
...                    "detector": "Detector",
...                    "detector_config": {"pixel1": 1e-4, "pixel2": 1e-4}})
>>> maps = pixel_maps(geo, (200, 200))
>>> round(float(maps["tth"].min()), 3), maps["tth"].attrs["units"]
(0.041, 'deg')
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from beamcat._util import atomic_path
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

__all__ = [
    "MAP_UNITS",
    "Geometry",
    "as_geometry",
    "check_shape",
    "pixel_array",
    "pixel_maps",
    "read_poni",
    "write_poni",
]

#: the maps of `pixel_maps`: name -> (pyFAI unit or quantity, units, long name)
MAP_UNITS = {
    "tth": ("2th_deg", "deg", "scattering angle 2θ"),
    "chi": ("chi_deg", "deg", "azimuthal angle χ"),
    "q": ("q_nm^-1", "nm^-1", "scattering vector q"),
    "r": ("r_mm", "mm", "radius in the detector plane"),
    "solid_angle": ("solid_angle", "1", "solid angle relative to the PONI pixel"),
    "polarization": ("polarization", "1", "polarisation factor"),
}
#: the line `write_poni` adds to a PONI of a flipped geometry, and `read_poni` honours
FLIP_COMMENT = "# beamcat: refers to the image flipped vertically (Dioptas view)"

_REQUIRED = ("dist", "poni1", "poni2")


@dataclass(frozen=True)
class Geometry:
    """A pyFAI geometry and the orientation of the images it refers to.

    Parameters
    ----------
    config : str
        pyFAI's configuration (``AzimuthalIntegrator.get_config()``) as canonical JSON.
    flip : bool
        The PONI refers to the image flipped vertically (Dioptas' view).
    source : str, optional
        The PONI file it came from, for messages (not part of equality).
    """

    config: str
    flip: bool = False
    source: str | None = field(default=None, compare=False)

    @functools.cached_property
    def integrator(self):
        """The pyFAI ``AzimuthalIntegrator`` (for the image as the PONI sees it)."""
        from pyFAI.integrator.azimuthal import AzimuthalIntegrator

        # one per Geometry object: pyFAI caches arrays inside it without checking their shape
        ai = AzimuthalIntegrator()
        ai.set_config(json.loads(self.config))
        return ai

    @property
    def wavelength(self) -> float | None:
        """Wavelength in m, None when the PONI has none."""
        return json.loads(self.config).get("wavelength") or None

    @property
    def energy(self) -> float | None:
        """Photon energy in eV, None when the PONI has no wavelength."""
        return None if self.wavelength is None else 12398.419843320026e-10 / self.wavelength

    @property
    def name(self) -> str:
        """The PONI file's path, for messages."""
        return self.source or "the geometry"

    def with_(self, **changes) -> Geometry:
        """A copy with pyFAI parameters changed (``dist``, ``poni1``, ``wavelength`` ...)."""
        config = json.loads(self.config)
        config.update(changes)
        return _from_config(config, self.flip, self.source)


def __getattr__(name: str):
    # `geometry.calibrate` and `geometry.rings` live in `calibrant`, which builds on this module
    if name in ("calibrate", "rings"):
        from beamcat.analyses import calibrant

        return getattr(calibrant, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _from_config(config: dict, flip: bool, source: str | None) -> Geometry:
    return Geometry(json.dumps(config, sort_keys=True), bool(flip), source)


def read_poni(path, *, flip: bool | None = None) -> Geometry:
    """Read a PONI file (v1 or v2 text, as pyFAI, Dioptas and pyFAI-calib2 write it).

    Parameters
    ----------
    path : path-like
    flip : bool, optional
        The PONI refers to the vertically flipped image (Dioptas). By default,
        True only when the file carries beamcat's own flip comment.

    Raises
    ------
    SourceNotFoundError
        No such file.
    FormatError
        Not a PONI: no distance/PONI/pixel size, or values that are not numbers.
    """
    from pyFAI.io.ponifile import PoniFile

    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such PONI file")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: not a PONI text file ({err})") from None
    keys = {line.split(":", 1)[0].strip().lower() for line in text.splitlines() if ":" in line}
    missing = [k for k in ("distance", "poni1", "poni2") if k not in keys]
    if missing:
        raise FormatError(
            f"{path}: not a PONI file, expected Distance, Poni1 and Poni2 lines; missing {missing}"
        )
    try:
        config = PoniFile(str(path)).as_dict()
    except Exception as err:  # pyFAI raises whatever its parser meets
        raise FormatError(f"{path}: unreadable PONI file ({type(err).__name__}: {err})") from None
    if flip is None:
        flip = FLIP_COMMENT in text
    return _checked(config, flip, str(path))


def _checked(config: dict, flip: bool, source: str | None) -> Geometry:
    name = source or "geometry"
    for key in _REQUIRED:
        value = config.get(key)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise FormatError(f"{name}: {key} must be a finite number, got {value!r}")
    if config["dist"] <= 0:
        raise FormatError(
            f"{name}: the sample-detector distance must be > 0 m, got {config['dist']}"
        )
    pixels = config.get("detector_config") or {}
    generic = config.get("detector") in (None, "Detector")
    if generic and not (pixels.get("pixel1") and pixels.get("pixel2")):
        raise FormatError(f"{name}: no pixel size (PixelSize1/PixelSize2 or a named detector)")
    return _from_config(config, flip, source)


def as_geometry(geometry, *, flip: bool | None = None) -> Geometry:
    """A `Geometry` from a PONI path, a pyFAI integrator, a config dict, or a Dataset.

    Parameters
    ----------
    geometry : Geometry, path-like, pyFAI Geometry/AzimuthalIntegrator, dict, Dataset or DataArray
        A Dataset or DataArray gives its ``attrs["poni"]`` (a path or a Geometry)
        and ``attrs["poni_flip"]``, as catalog entries with ``poni=`` set them.
    flip : bool, optional
        Override the orientation (see the module docstring); None keeps it.
    """
    if isinstance(geometry, (xr.Dataset, xr.DataArray)):
        attrs = geometry.attrs
        if attrs.get("poni") is None:
            raise OptionError(
                f"{attrs.get('source', 'this data')}: no geometry; pass one, "
                "or open the entry with poni=PATH"
            )
        flip = bool(attrs.get("poni_flip", False)) if flip is None else flip
        geometry = attrs["poni"]
    if isinstance(geometry, Geometry):
        out = geometry
    elif isinstance(geometry, (str, Path)):
        out = read_poni(geometry)
    elif isinstance(geometry, dict):
        out = _checked(dict(geometry), False, None)
    elif hasattr(geometry, "get_config"):
        out = _from_config(geometry.get_config(), False, None)
    else:
        raise OptionError(
            "a geometry is a PONI path, a pyFAI integrator, a config dict or a Geometry, "
            f"got {type(geometry).__name__}"
        )
    if flip is not None and bool(flip) != out.flip:
        out = Geometry(out.config, bool(flip), out.source)
    return out


def write_poni(geometry, path) -> Path:
    """Write `geometry` as a PONI file (pyFAI's v2 text), atomically; returns the path.

    A flipped geometry gets a comment line saying so, which `read_poni` honours
    (pyFAI and Dioptas skip it as a comment).
    """
    geometry = as_geometry(geometry)
    path = Path(path)
    with atomic_path(path) as tmp:
        geometry.integrator.write(str(tmp))
        if geometry.flip:
            with open(tmp, "a", encoding="utf-8") as f:
                f.write(FLIP_COMMENT + "\n")
    return path


def check_shape(geometry, shape: tuple[int, int], name: str = "the image") -> None:
    """Raise `FormatError` when the PONI's detector has a shape and `shape` differs."""
    geometry = as_geometry(geometry)
    detector_shape = geometry.integrator.detector.max_shape
    if detector_shape is not None and tuple(detector_shape) != tuple(shape):
        raise FormatError(
            f"{name} is {tuple(shape)} pixels but the PONI {geometry.name} describes a "
            f"{tuple(detector_shape)} detector"
        )


@functools.lru_cache(maxsize=64)
def _cached_array(geometry: Geometry, shape: tuple, what: str, kind: str, factor) -> np.ndarray:
    ai = geometry.integrator
    # pyFAI logs a warning for every detector without a known shape; that is every PONI's "Detector"
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    if what == "solid_angle":
        array = ai.solidAngleArray(shape, absolute=False)
    elif what == "polarization":
        array = ai.polarization(shape, factor=factor)
    else:
        array = ai.array_from_unit(shape, kind, what, scale=True)
    array = np.asarray(array, dtype=np.float64)
    if geometry.flip:
        array = array[::-1]
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def pixel_array(
    geometry,
    shape: tuple[int, int],
    what: str,
    *,
    kind: str = "center",
    polarization_factor: float = 0.99,
) -> np.ndarray:
    """One per-pixel map (read-only, cached per geometry and shape), aligned with the raw image.

    Parameters
    ----------
    geometry : anything `as_geometry` takes
    shape : (int, int)
        The image shape ``(y, x)``.
    what : str
        A pyFAI unit (``"2th_deg"``, ``"2th_rad"``, ``"q_nm^-1"``, ``"q_A^-1"``,
        ``"r_mm"``, ``"chi_deg"`` ...), ``"solid_angle"`` (relative to the PONI
        pixel, as pyFAI normalises) or ``"polarization"``.
    kind : {"center", "delta", "corner"}
        pyFAI's array type for units: pixel centres, or the half-width of the
        pixel in that unit (what pyFAI's bbox splitting uses).
    polarization_factor : float
        -1 (vertical) .. 1 (horizontal); only for ``"polarization"``.
    """
    geometry = as_geometry(geometry)
    shape = tuple(int(n) for n in shape)
    check_shape(geometry, shape)
    factor = float(polarization_factor) if what == "polarization" else None
    try:
        return _cached_array(geometry, shape, what, kind, factor)
    except (KeyError, RuntimeError) as err:
        raise OptionError(f"unknown pyFAI unit or map {what!r} ({err})") from None


def pixel_maps(geometry, shape: tuple[int, int], *, polarization_factor=0.99) -> xr.Dataset:
    """Every per-pixel map on ``(y, x)``: 2θ, χ, q, radius, solid angle, polarisation.

    Parameters
    ----------
    geometry : anything `as_geometry` takes
    shape : (int, int)
    polarization_factor : float
        For the ``polarization`` map (pyFAI's convention: 0.99 is a horizontally
        polarised synchrotron beam).

    Returns
    -------
    Dataset (y, x)
        ``tth`` (deg), ``chi`` (deg), ``q`` (nm^-1), ``r`` (mm), ``solid_angle``,
        ``polarization``; attrs ``poni`` (the geometry's source) and ``poni_flip``.
    """
    geometry = as_geometry(geometry)
    data = {}
    for name, (unit, units, long_name) in MAP_UNITS.items():
        array = pixel_array(geometry, shape, unit, polarization_factor=polarization_factor)
        data[name] = (("y", "x"), array, {"units": units, "long_name": long_name})
    attrs = {"poni_flip": int(geometry.flip), "polarization_factor": polarization_factor}
    if geometry.source:
        attrs["poni"] = geometry.source
    return xr.Dataset(data, attrs=attrs)
