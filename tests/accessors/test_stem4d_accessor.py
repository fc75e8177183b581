"""``ds.stem4d``: each method is its `beamcat.analyses.stem4d` twin on the signal, lazily.

What is compared: every accessor method against its function called on the
picked signal (identical results: the accessor only picks), laziness under a
scheduler that forbids computing, the data's ``attrs["calibration"]`` found by
``radial_profiles``, and ``calibrate_au`` against its function on the Au reference.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
import beamcat.accessors  # noqa: F401  (registers the accessors)
from beamcat.analyses import stem4d
from beamcat.analyses.stem4d_calibration import calibrate_au
from beamcat.catalog.demo import stem4d as demo
from beamcat.errors import OptionError


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "stem4d"
    found = {e.name: e for e in demo.write(folder, np.random.default_rng([0, 11]))}
    return {k: beamcat.open_dataset(e.source, **e.options) for k, e in found.items()}


@pytest.fixture(scope="module")
def scan(entries):
    """The demo scan with a calibration in attrs (as opening it with calibration= gives)."""
    cal = {"x0": demo.CENTRE[0], "y0": demo.CENTRE[1], "a": 40.0, "b": 40.0 * demo.AXIS_RATIO}
    cal.update(theta=demo.THETA, reciprocal_pixel_size=demo.RECIPROCAL_PIXEL)
    return entries["stem4d_scan"].assign_attrs(calibration=cal)


def test_methods_are_their_functions_and_stay_lazy(scan, raise_if_dask_computes):
    counts = scan.counts.assign_attrs(scan.attrs)
    bf = stem4d.disc_mask((128, 128), demo.CENTRE, 6)
    np.testing.assert_array_equal(scan.stem4d.disc_mask(demo.CENTRE, 6), bf)
    adf = scan.stem4d.annulus_mask(demo.CENTRE, 20, 50)
    np.testing.assert_array_equal(adf, stem4d.annulus_mask((128, 128), demo.CENTRE, 20, 50))
    calls = {
        "mean_pattern": ((), {}),
        "max_pattern": ((), {}),
        "sum_pattern": ((), {}),
        "sum_image": ((), {}),
        "virtual_images": (({"bf": bf, "adf": adf},), {}),
        "centre_of_mass": ((), {"threshold": 50}),
        "radial_profiles": ((), {"n_bins": 32}),
    }
    for name, (args, kwargs) in calls.items():
        with raise_if_dask_computes():
            out = getattr(scan.stem4d, name)(*args, **kwargs)
        arrays = out.data_vars.values() if isinstance(out, xr.Dataset) else [out]
        assert all(isinstance(a.data, da.Array) for a in arrays), name
        expected = getattr(stem4d, name)(counts, *args, **kwargs)
        xr.testing.assert_identical(out.compute(), expected.compute())
    # the DataArray accessor is the same
    xr.testing.assert_identical(
        counts.stem4d.virtual_images(bf).compute(), scan.stem4d.virtual_images(bf).compute()
    )


def test_radial_profiles_find_the_calibration_in_attrs(scan):
    out = scan.stem4d.radial_profiles(n_bins=16)
    assert out["q"].attrs["units"] == "1/Angstrom"
    bare = scan.drop_attrs(deep=False)
    given = stem4d.radial_profiles(bare, scan.attrs["calibration"], n_bins=16)
    xr.testing.assert_equal(out, given)
    with pytest.raises(OptionError, match="no calibration"):
        scan.drop_attrs(deep=False).stem4d.radial_profiles()


def test_save_profiles_writes_the_profiles(scan, tmp_path):
    out = scan.stem4d.radial_profiles(n_bins=8).compute()
    path = out.stem4d.save_profiles(tmp_path / "p.zarr", name="run")
    back = beamcat.open_dataset(path)
    np.testing.assert_array_equal(back["run_azimuthal_mean"].values, out["mean"].values)


def test_calibrate_au_is_its_function(entries):
    reference = entries["stem4d_au_reference"]
    got = reference.stem4d.calibrate_au(voltage_kv=300, start_pixel_size=demo.RECIPROCAL_PIXEL)
    want = calibrate_au(reference, voltage_kv=300, start_pixel_size=demo.RECIPROCAL_PIXEL)
    assert got == want
    assert abs(got.reciprocal_pixel_size / demo.RECIPROCAL_PIXEL - 1) < 0.005
