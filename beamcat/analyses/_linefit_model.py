"""The multi-Gaussian line model (parameters, constraints, bounds) and the fit statuses.

A model of ``N`` lines over ``S`` window segments (fused windows) is

    F(λ) = Σ_l I_l exp(-(λ - x_l)² / 2 s_l²) + B_k + b_k (λ - λref_k),   k = segment of λ

with ``I`` the peak (data units), ``x`` the centre and ``s`` the Gaussian σ
(Angstrom), ``B_k`` the background of segment ``k`` and ``b_k`` its slope
(``background="linear"`` only; the slope is about ``λref_k``, the mean rest
wavelength of the segment's lines, which keeps it uncorrelated with ``B_k``).

The full parameter vector (the ``param`` dim of the results) is, per line,
``<line>_intensity, <line>_center, <line>_width``, then per segment
``background_<k>`` (and ``slope_<k>``). Constraints remove parameters from the
*free* vector the fitter sees; every full parameter is ``scale * free[src] +
shift``:

- a lock ``(b, a, offset)``: ``x_b = x_a + offset`` (SAFFRON's
  ``set_lock_protocol``), so the offset holds exactly;
- a tied width ``(b, a)``: ``s_b = s_a``;
- a ratio ``(b, a, r)``: ``I_b = r I_a``.

Chains (c locked to b locked to a) resolve to their root; a cycle is an error.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable, Mapping

import numpy as np

from beamcat.errors import OptionError

__all__ = ["DEFAULT_BOUNDS", "FitStatus", "LineModel", "line_model"]

#: Default bounds per parameter kind. SAFFRON's (``fit_pixel.py``): I [0, 1e3],
#: x ± 1 Angstrom around the guess, s [0.28, 0.8] Angstrom (SPICE line widths),
#: B [-5, 5]. SAFFRON's I and B bounds are in SPICE's W/m2/sr/nm: a bright window
#: (or EIS in erg/cm2/s/sr/A) falls outside them and SAFFRON returns NaN for the
#: whole window. Here ``intensity`` has no upper bound and ``background`` is
#: ``None``: ± 5 times the spectrum's largest absolute finite sample, a bound
#: that scales with the data and never excludes its level. ``center`` is an
#: offset from the line's rest wavelength; ``slope`` (per Angstrom) is free.
DEFAULT_BOUNDS = {
    "intensity": (0.0, np.inf),
    "center": (-1.0, 1.0),
    "width": (0.28, 0.8),
    "background": None,
    "slope": (-np.inf, np.inf),
}

KINDS = ("intensity", "center", "width")


class FitStatus(enum.IntEnum):
    """Per-spectrum outcome of a fit.

    CONVERGED
        Converged, every parameter inside its bounds.
    MAX_ITERATIONS
        Stopped at the iteration limit; parameters and errors are the last ones.
    TOO_FEW_POINTS
        Fewer finite samples than free parameters + 1: parameters NaN.
    SINGULAR
        ``JᵀWJ`` not invertible at the solution: parameters kept. Where the
        model does not depend on some parameters (the centre and width of a
        line whose peak went to 0: an absent line), those get NaN errors and
        the others the errors of the rest; otherwise (parameters the data
        cannot tell apart) every error is NaN. Also a start where the model is
        not finite (a NaN ``p0``): parameters NaN.
    AT_BOUND
        Converged with at least one parameter on a bound; errors from the
        covariance as for CONVERGED (they ignore the bound).
    NO_DATA
        No usable sample (all NaN, or no finite positive σ): parameters NaN.
    """

    CONVERGED = 0
    MAX_ITERATIONS = 1
    TOO_FEW_POINTS = 2
    SINGULAR = 3
    AT_BOUND = 4
    NO_DATA = 5


@dataclasses.dataclass(frozen=True)
class LineModel:
    """A multi-Gaussian line model; build it with `line_model`.

    Attributes
    ----------
    lines : tuple of str
        Line names, in parameter order.
    rest : tuple of float
        Rest wavelengths (Angstrom).
    background : {"constant", "linear"}
    segments : int
        Number of fused windows, each with its own background.
    line_segment : tuple of int
        The segment (window) of each line.
    reference : tuple of float
        Per segment, the wavelength the slope is measured from (Angstrom).
    bounds : tuple of (kind, bounds) pairs
        Bounds per parameter kind (see `DEFAULT_BOUNDS`).
    src, scale, shift : tuple
        Per full parameter: ``full = scale * free[src] + shift``.
    param_names, free_names : tuple of str
    """

    lines: tuple[str, ...]
    rest: tuple[float, ...]
    background: str
    segments: int
    line_segment: tuple[int, ...]
    reference: tuple[float, ...]
    bounds: tuple
    src: tuple[int, ...]
    scale: tuple[float, ...]
    shift: tuple[float, ...]
    param_names: tuple[str, ...]
    free_names: tuple[str, ...]

    @property
    def n_lines(self) -> int:
        """Number of lines."""
        return len(self.lines)

    @property
    def n_background(self) -> int:
        """Background parameters per segment (1 constant, 2 linear)."""
        return 1 if self.background == "constant" else 2

    @property
    def n_free(self) -> int:
        """Number of free parameters."""
        return len(self.free_names)

    def expand(self, free: np.ndarray) -> np.ndarray:
        """Full parameters ``(..., n_param)`` from free ones ``(..., n_free)``."""
        free = np.asarray(free, dtype=float)
        return np.asarray(self.scale) * free[..., list(self.src)] + np.asarray(self.shift)

    def covariance(self, free_covariance: np.ndarray, rows, cols) -> np.ndarray:
        """Covariances of full parameters `rows` and `cols` (index arrays, broadcast together).

        From the free parameters' covariance ``(..., n_free, n_free)``: full
        parameters are ``scale * free[src] + shift``, so ``cov(i, j) =
        scale_i scale_j cov_free(src_i, src_j)``. ``rows = cols = range(n_param)``
        gives the variances; ``rows[:, None], cols[None, :]`` a matrix.
        """
        rows, cols = np.asarray(rows), np.asarray(cols)
        src, scale = np.asarray(self.src), np.asarray(self.scale)
        return scale[rows] * scale[cols] * free_covariance[..., src[rows], src[cols]]

    def roots(self) -> np.ndarray:
        """Index in the full vector of each free parameter (its root)."""
        src, scale, shift = map(np.asarray, (self.src, self.scale, self.shift))
        plain = (scale == 1.0) & (shift == 0.0)
        return np.array([np.flatnonzero((src == f) & plain)[0] for f in range(self.n_free)])

    def kind(self, index: int) -> str:
        """The kind (intensity, center, width, background, slope) of full parameter `index`."""
        if index < 3 * self.n_lines:
            return KINDS[index % 3]
        return ("background", "slope")[(index - 3 * self.n_lines) % self.n_background]

    @functools.cached_property
    def arrays(self) -> tuple:
        """The model as the kernel takes it (`beamcat.analyses._linefit_kernel.fit_spectra`).

        ``(src, scale, shift, n_bg, reference, rest, root, code, owner, lo_kind,
        hi_kind, scaled)``: per full parameter its free source, scale and shift;
        per free parameter its root (full index), kind code, owner (line or
        segment), bounds (centre bounds about the rest wavelength) and whether
        its bound scales with the spectrum (the default background bound).
        """
        bounds = dict(self.bounds)
        roots = self.roots()
        nl3 = 3 * self.n_lines
        kinds = [self.kind(j) for j in roots]
        code = np.array([(*KINDS, "background", "slope").index(k) for k in kinds], np.int64)
        owner = np.array([j // 3 if j < nl3 else (j - nl3) // self.n_background for j in roots])
        scaled = np.array([bounds[k] is None for k in kinds])
        lo_kind, hi_kind = np.zeros(len(roots)), np.zeros(len(roots))
        for f, (j, k) in enumerate(zip(roots, kinds, strict=True)):
            if bounds[k] is not None:
                offset = self.rest[j // 3] if k == "center" else 0.0
                lo_kind[f], hi_kind[f] = bounds[k][0] + offset, bounds[k][1] + offset
        return (
            np.asarray(self.src, np.int64),
            np.asarray(self.scale, np.float64),
            np.asarray(self.shift, np.float64),
            self.n_background,
            np.asarray(self.reference, np.float64),
            np.asarray(self.rest, np.float64),
            np.asarray(roots, np.int64),
            code,
            owner.astype(np.int64),
            lo_kind,
            hi_kind,
            scaled,
        )


def line_model(
    lines: Mapping[str, float],
    *,
    background: str = "constant",
    locks: Iterable | None = None,
    tied_widths: Iterable | None = None,
    ratios: Iterable | None = None,
    bounds: Mapping | None = None,
    segments: int = 1,
    line_segments: Mapping[str, int] | None = None,
) -> LineModel:
    """A `LineModel` of Gaussian lines plus a background per segment.

    Parameters
    ----------
    lines : mapping str -> float
        Line name -> rest wavelength (Angstrom).
    background : {"constant", "linear"}
        Background per segment: ``B`` or ``B + b (λ - λref)``.
    locks : iterable of (line_b, line_a, offset), optional
        ``center_b = center_a + offset`` (Angstrom); ``offset=None`` takes the
        difference of the rest wavelengths.
    tied_widths : iterable of (line_b, line_a), optional
        ``width_b = width_a``.
    ratios : iterable of (line_b, line_a, r), optional
        ``intensity_b = r * intensity_a``.
    bounds : mapping, optional
        Overrides of `DEFAULT_BOUNDS` per kind: ``{"width": (0.02, 0.1)}``
        (EIS lines are narrower than SPICE's default allows), ``"center"`` as
        offsets from the rest wavelength, ``"background": None`` for the
        spectrum-scaled default.
    segments : int
        Number of fused windows (each keeps its own background).
    line_segments : mapping str -> int, optional
        The segment of each line (default 0); sets the slope reference.

    Raises
    ------
    OptionError
        Unknown background, a constraint naming a line not in `lines`, a line
        constrained twice in the same way, a cycle, bad bounds or segments.

    Examples
    --------
    >>> m = line_model({"a": 702.7, "b": 703.87}, locks=[("b", "a", None)])
    >>> m.free_names
    ('a_intensity', 'a_center', 'a_width', 'b_intensity', 'b_width', 'background_0')
    >>> m.expand([1.0, 702.8, 0.3, 2.0, 0.35, 0.1])[4].round(2)
    np.float64(703.97)
    """
    names = tuple(map(str, lines))
    if not names:
        raise OptionError("line_model: no lines given")
    rest = tuple(float(lines[n]) for n in names)
    if background not in ("constant", "linear"):
        raise OptionError(f"background={background!r}: expected 'constant' or 'linear'")
    if int(segments) < 1:
        raise OptionError(f"segments={segments!r}: expected a positive number of windows")
    segments = int(segments)
    line_segment = tuple(int((line_segments or {}).get(n, 0)) for n in names)
    bad = [n for n, k in zip(names, line_segment, strict=True) if not 0 <= k < segments]
    if bad or set(line_segments or {}) - set(names):
        raise OptionError(
            f"line_segments={line_segments!r}: every line needs a segment in 0..{segments - 1}, "
            f"and only lines of the model ({list(names)})"
        )
    index = {n: i for i, n in enumerate(names)}
    links = {}  # full index of b -> (full index of a, scale, shift)
    for kind, items in (("center", locks), ("width", tied_widths), ("intensity", ratios)):
        for item in items or ():
            b, a, value = _constraint(kind, item, index)
            if b == a:
                raise OptionError(f"{kind} constraint {item!r}: a line cannot follow itself")
            k = KINDS.index(kind)
            if kind == "center":
                shift = rest[index[b]] - rest[index[a]] if value is None else float(value)
                link = (3 * index[a] + k, 1.0, shift)
            elif kind == "width":
                link = (3 * index[a] + k, 1.0, 0.0)
            else:
                link = (3 * index[a] + k, float(value), 0.0)
            if 3 * index[b] + k in links:
                raise OptionError(f"{kind} constraint {item!r}: line {b!r} is constrained twice")
            links[3 * index[b] + k] = link
    nb = 1 if background == "constant" else 2
    n_param = 3 * len(names) + nb * segments
    param_names = [f"{n}_{k}" for n in names for k in KINDS]
    for s in range(segments):
        param_names += [f"background_{s}", f"slope_{s}"][:nb]
    src, scale, shift = _resolve(links, n_param, param_names)
    free_names = tuple(param_names[j] for j in range(n_param) if j not in links)
    reference = tuple(
        float(np.mean([r for r, k in zip(rest, line_segment, strict=True) if k == s] or [0.0]))
        for s in range(segments)
    )
    return LineModel(
        names,
        rest,
        background,
        segments,
        line_segment,
        reference,
        tuple(_bounds(bounds).items()),
        src,
        scale,
        shift,
        tuple(param_names),
        free_names,
    )


def _constraint(kind: str, item, index: Mapping[str, int]) -> tuple[str, str, float | None]:
    """``(b, a, value)`` of a lock, tie or ratio, its lines checked."""
    item = tuple(item)
    size = 2 if kind == "width" else 3
    if len(item) != size:
        raise OptionError(f"{kind} constraint {item!r}: expected {size} items")
    b, a = map(str, item[:2])
    for name in (b, a):
        if name not in index:
            raise OptionError(
                f"{kind} constraint {item!r}: line {name!r} is not in the model's lines "
                f"{list(index)} (lines of another window can be locked only when the windows "
                "are fused)"
            )
    return b, a, item[2] if size == 3 else None


def _resolve(links: Mapping, n_param: int, names) -> tuple[tuple, tuple, tuple]:
    """Per full parameter ``(src, scale, shift)``: chains followed to their free root."""
    free_of = {}
    for j in range(n_param):
        if j not in links:
            free_of[j] = len(free_of)
    src, scale, shift = [], [], []
    for j in range(n_param):
        s, o, seen = 1.0, 0.0, {j}
        root = j
        while root in links:
            root, factor, offset = links[root]
            if root in seen:
                raise OptionError(f"constraints on {names[j]!r} form a cycle")
            seen.add(root)
            s, o = s * factor, o + offset
        src.append(free_of[root])
        scale.append(s)
        shift.append(o)
    return tuple(src), tuple(scale), tuple(shift)


def _bounds(bounds: Mapping | None) -> dict:
    """`DEFAULT_BOUNDS` with the overrides in `bounds`, checked."""
    merged = dict(DEFAULT_BOUNDS)
    for kind, value in (bounds or {}).items():
        if kind not in DEFAULT_BOUNDS:
            raise OptionError(
                f"bounds: unknown kind {kind!r}; expected one of {list(DEFAULT_BOUNDS)}"
            )
        if value is not None:
            lo, hi = map(float, value)
            if not lo < hi:
                raise OptionError(
                    f"bounds[{kind!r}] = {value!r}: expected (low, high) with low < high"
                )
            value = (lo, hi)
        elif kind != "background":
            raise OptionError(f"bounds[{kind!r}] = None: only 'background' scales with the data")
        merged[kind] = value
    return merged
