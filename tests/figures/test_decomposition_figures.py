"""NMF figures: what is drawn is the data (scree ratios, components, loading maps, scatter pairs).

The inputs are small hand-made arrays shaped as `scree`, `nmf`, `element_maps`
return them, so each drawn value is known here.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from bokeh.models import LogScale

from beamcat.analyses.edx import correlate
from beamcat.errors import OptionError
from beamcat.figures import decomposition as fd
from beamcat.figures import save_figure

DPI = 40  # small renders: the tests check data, not looks


@pytest.fixture(scope="module")
def result() -> xr.Dataset:
    rng = np.random.default_rng(0)
    q = np.linspace(0.1, 1.0, 30)
    return xr.Dataset(
        {
            "components": (("component", "q"), rng.random((3, 30))),
            "loadings": (("component", "scan_y", "scan_x"), rng.random((3, 4, 5))),
        },
        coords={"q": ("q", q, {"units": "1/Angstrom", "long_name": "q"}), "component": [0, 1, 2]},
    )


def _axes(fig, label):
    return next(ax for ax in fig.axes if ax.get_label() == label)


def _gid(ax, gid):
    return next(a for a in ax.get_children() if a.get_gid() == gid)


def test_scree_figure_draws_the_ratios(tmp_path):
    ratio = xr.DataArray([0.6, 0.3, 0.1], dims="component")
    fig = fd.scree_figure(ratio, chosen=2)
    ax = _axes(fig, "scree")
    x, y = _gid(ax, "scree").get_data()
    assert list(x) == [1, 2, 3] and list(y) == [0.6, 0.3, 0.1]
    assert _gid(ax, "chosen").get_xdata()[0] == 2 and ax.get_yscale() == "log"
    save_figure(fig, tmp_path / "scree.png", dpi=DPI)
    assert isinstance(hv.render(fd.scree_hv(ratio), backend="bokeh").y_scale, LogScale)
    with pytest.raises(OptionError, match="scree"):
        fd.scree_figure(xr.DataArray(np.ones((2, 2))))


def test_nmf_figure_draws_components_and_loading_maps(result, tmp_path):
    fig = fd.nmf_figure(result)
    ax = _axes(fig, "components")
    for k in range(3):
        x, y = _gid(ax, f"component:{k}").get_data()
        np.testing.assert_array_equal(x, result.q.values)
        np.testing.assert_array_equal(y, result.components[k].values)
        image = _gid(_axes(fig, f"loading:{k}"), f"loading:{k}")
        np.testing.assert_array_equal(image.get_array(), result.loadings[k].values)
    assert ax.get_xlabel() == "Q (1/Angstrom)"
    save_figure(fig, tmp_path / "nmf.png", dpi=DPI)
    layout = fd.nmf_hv(result)
    assert isinstance(layout, hv.Layout) and len(layout) == 4  # curves + 3 maps
    np.testing.assert_array_equal(
        layout.Image.Loading_2.dimension_values(2, flat=False), result.loadings[2].values
    )
    hv.render(layout, backend="bokeh")  # the page's twin renders


def test_nmf_figure_picks_a_dataset_of_a_joint_fit(result):
    joint = result.assign(
        loadings=xr.concat([result.loadings, 2 * result.loadings], "dataset").assign_coords(
            dataset=["a", "b"]
        )
    )
    fig = fd.nmf_figure(joint, dataset="b")
    image = _gid(_axes(fig, "loading:1"), "loading:1")
    np.testing.assert_array_equal(image.get_array(), 2 * result.loadings[1].values)
    with pytest.raises(OptionError, match=r"dataset='c'.*\['a', 'b'\]"):
        fd.nmf_figure(joint, dataset="c")
    with pytest.raises(OptionError, match="nmf"):
        fd.nmf_figure(xr.Dataset())


def test_correlation_figure_scatters_each_pair_with_its_r(result, tmp_path):
    maps = xr.DataArray(
        np.stack([3 * result.loadings[0].values + 1, result.loadings[2].values ** 2]),
        dims=("element", "scan_y", "scan_x"),
        coords={"element": ["Au_La", "C_Ka"]},
        attrs={"units": "counts"},
    )
    fig = fd.correlation_figure(result, maps, components=[0, 2])
    assert len(fig.axes) == 4
    ax = _axes(fig, "scatter:0:Au_La")
    points = _gid(ax, "scatter:0:Au_La").get_offsets()
    np.testing.assert_allclose(points[:, 0], result.loadings[0].values.ravel())
    np.testing.assert_allclose(points[:, 1], maps[0].values.ravel())
    assert ax.get_title() == "r = 1.000"
    r = float(correlate(result, maps).sel(component=2, element="C_Ka"))
    assert _axes(fig, "scatter:2:C_Ka").get_title() == f"r = {r:.3f}"
    save_figure(fig, tmp_path / "scatter.png", dpi=DPI)
