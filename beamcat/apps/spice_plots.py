"""HoloViews elements of the SPICE page: line-fit maps, the status map, one pixel's spectrum.

Maps follow the other pages: pixel (row i, column j) spans ``[j, j + 1) x
[i, i + 1)``, row 0 on top, so a click at (x, y) is pixel ``(floor(y),
floor(x))`` (`beamcat.apps.stem4d_plots.scan_position`). The status map is
categorical: one colour per `FitStatus`, named on the colour bar.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
from bokeh.models import FixedTicker

from beamcat.apps.quicklook import robust_limits
from beamcat.apps.spice_data import FitStatus, PixelFit

#: map kinds: variable of the fit result -> (title, colour map)
MAP_KINDS = {
    "intensity": ("Intensity", "inferno"),
    "velocity": ("Velocity (km/s)", "RdBu_r"),
    "width": ("Width σ (Å)", "viridis"),
    "reduced_chi2": ("Reduced χ²", "magma"),
    "status": ("Status", None),
}
#: one colour per FitStatus (converged green, failures red/grey)
STATUS_COLOURS = ("#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#1f77b4", "#7f7f7f")
#: side (screen px) of the longer axis of a map
MAP_SIZE = 260
MODEL_COLOUR, DATA_COLOUR, MAP_FIT_COLOUR = "#d62728", "#1f77b4", "#aaaaaa"


def map_element(values: np.ndarray | None, kind: str, title: str) -> hv.Image:
    """One map (y, x) of `kind` (`MAP_KINDS`), pixel (i, j) over ``[j, j+1) x [i, i+1)``."""
    label, cmap = MAP_KINDS[kind]
    kdims, vdim = ["x", "y"], hv.Dimension(kind, label=label)
    if values is None:
        return hv.Image([], kdims, vdim).opts(title=title, tools=["tap"])
    ny, nx = values.shape
    size = {"frame_width": MAP_SIZE} if nx >= ny else {"frame_height": MAP_SIZE}
    image = hv.Image(values[::-1].astype(np.float64), kdims, vdim, bounds=(0, 0, nx, ny))
    if kind == "status":
        style = _status_style()
    elif kind == "velocity":
        top = float(np.nanpercentile(np.abs(values), 99)) if np.isfinite(values).any() else 1.0
        style = {"cmap": cmap, "clim": (-max(top, 1e-9), max(top, 1e-9))}
    else:
        style = {"cmap": cmap, "clim": robust_limits(values, percentiles=(1, 99))}
    return image.opts(
        invert_yaxis=True,
        data_aspect=1,
        colorbar=True,
        tools=["hover", "tap"],
        title=title,
        **style,
        **size,
    )


def _status_style() -> dict:
    """Categorical colours and the FitStatus names as colour-bar labels."""
    names = {s.value: s.name for s in FitStatus}
    return {
        "cmap": list(STATUS_COLOURS),
        "clim": (-0.5, len(STATUS_COLOURS) - 0.5),
        "color_levels": len(STATUS_COLOURS),
        "hooks": [_room_for_names],
        "colorbar_opts": {
            "ticker": FixedTicker(ticks=list(names)),
            "major_label_overrides": names,
        },
    }


def _room_for_names(plot, element) -> None:
    """Room for the FitStatus names right of the colour bar (bokeh sizes it for the ticks)."""
    plot.state.min_border_right = 120


def marker_element(position: tuple[int, int] | None) -> hv.Points:
    """The selected pixel, a cross at its centre (none before the first)."""
    points = [] if position is None else [(position[1] + 0.5, position[0] + 0.5)]
    return hv.Points(points, ["x", "y"]).opts(marker="x", size=12, line_width=3, color="cyan")


def spectrum_elements(fit: PixelFit | None, title: str, map_fit: PixelFit | None = None):
    """The spectrum with σ error bars, the model, each component; residuals below.

    Parameters
    ----------
    fit : PixelFit or None
        The fit shown (None: empty plots).
    title : str
    map_fit : PixelFit, optional
        The maps' fit of the same pixel, drawn grey when `fit` is a refit.

    Returns
    -------
    (Overlay, Overlay)
        Spectrum (title `title`) and residuals (``"Residuals " + title``).
    """
    wave_dim = hv.Dimension("wavelength", label="Wavelength (Å)")
    if fit is None:
        return hv.Curve([], wave_dim).opts(title=title), hv.Curve([], wave_dim).opts(
            title=f"Residuals {title}"
        )
    s = fit.spectrum
    wave = s.wavelength - s.shift
    value_dim = hv.Dimension("value", label=f"Radiance ({s.units})" if s.units else "Radiance")
    size = {"responsive": True, "height": 320}
    data = hv.ErrorBars((wave, s.values, s.sigma), wave_dim, [value_dim, "sigma"]).opts(
        color=DATA_COLOUR
    ) * hv.Scatter((wave, s.values), wave_dim, value_dim, label="data").opts(
        color=DATA_COLOUR, size=5
    )
    if s.spikes.any():
        data = data * hv.Scatter(
            (wave[s.spikes], s.values[s.spikes]), wave_dim, value_dim, label="despiked"
        ).opts(color="black", marker="x", size=9)
    curves = []
    if map_fit is not None:
        curves.append(
            hv.Curve((wave, map_fit.total), wave_dim, value_dim, label="map fit").opts(
                color=MAP_FIT_COLOUR, line_width=2
            )
        )
    for name, component in fit.components.items():
        curves.append(
            hv.Curve((wave, component), wave_dim, value_dim, label=name).opts(
                line_dash="dashed", line_width=1.5
            )
        )
    curves.append(
        hv.Curve((wave, fit.total), wave_dim, value_dim, label="model").opts(
            color=MODEL_COLOUR, line_width=2.5
        )
    )
    spectrum = hv.Overlay([data, *curves]).opts(
        title=title, legend_position="top_right", show_legend=True, **size
    )
    residual_dim = hv.Dimension("residual", label="Data − model")
    residuals = (
        hv.ErrorBars((wave, fit.residuals, s.sigma), wave_dim, [residual_dim, "sigma"]).opts(
            color=DATA_COLOUR
        )
        * hv.Scatter((wave, fit.residuals), wave_dim, residual_dim).opts(color=DATA_COLOUR, size=4)
        * hv.HLine(0).opts(color="black", line_width=1)
    )
    return spectrum, residuals.opts(title=f"Residuals {title}", responsive=True, height=200)


def parameter_table(fit: PixelFit) -> str:
    """Markdown table of a pixel fit: per line intensity, centre, width, velocity with errors."""
    rows = ["| line | intensity | centre (Å) | width σ (Å) | velocity (km/s) |", "|---" * 5 + "|"]
    p, e = fit.params, fit.errors
    for line in fit.model.lines:
        cells = [
            f"{p[f'{line}_intensity']:.4g} ± {e[f'{line}_intensity']:.2g}",
            f"{p[f'{line}_center']:.4f} ± {e[f'{line}_center']:.2g}",
            f"{p[f'{line}_width']:.4f} ± {e[f'{line}_width']:.2g}",
        ]
        velocity, error = fit.velocity(line)
        rows.append(f"| {line} | {' | '.join(cells)} | {velocity:.2f} ± {error:.2g} |")
    return "\n".join(rows)
