"""PONI geometry: v1/v2 files, the Dioptas flip, cached maps equal to pyFAI's, writing back."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pyFAI.detectors import detector_factory
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from beamcat.analyses import geometry
from beamcat.errors import BeamcatError, FormatError, OptionError, SourceNotFoundError

SHAPE = (1043, 981)


@pytest.fixture
def ceo2_poni(shared_data):
    return shared_data / "dioptas" / "CeO2_Pilatus1M.poni"


def _reference(poni_path) -> AzimuthalIntegrator:
    ai = AzimuthalIntegrator()
    ai.load(str(poni_path))
    return ai


def test_v1_poni_matches_pyfai(ceo2_poni):
    geo = geometry.read_poni(ceo2_poni)
    ai = _reference(ceo2_poni)
    for key in ("dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength"):
        assert geo.integrator.get_config()[key] == ai.get_config()[key]
    # 12398.42 eV·Å / 0.4066 Å
    assert geo.energy == pytest.approx(30492.9, abs=0.1)
    assert geo.source == str(ceo2_poni) and not geo.flip


def test_v2_poni(shared_data):
    geo = geometry.read_poni(shared_data / "dioptas" / "lambda" / "L2.poni")
    assert geo.integrator.detector.pixel1 == pytest.approx(55e-6)
    assert geo.integrator.dist == pytest.approx(0.3091923560063649)


def test_maps_equal_pyfai_and_flip_reverses_rows(ceo2_poni):
    ai = _reference(ceo2_poni)
    plain = geometry.pixel_maps(geometry.read_poni(ceo2_poni), SHAPE)
    flipped = geometry.pixel_maps(geometry.read_poni(ceo2_poni, flip=True), SHAPE)
    # the same pyFAI call on the same geometry: bit-identical
    expected = ai.array_from_unit(SHAPE, "center", "2th_deg", scale=True)
    np.testing.assert_array_equal(plain["tth"].values, expected)
    np.testing.assert_array_equal(flipped["tth"].values, expected[::-1])
    np.testing.assert_array_equal(flipped["solid_angle"].values, plain["solid_angle"].values[::-1])
    assert plain["tth"].attrs["units"] == "deg" and plain["q"].attrs["units"] == "nm^-1"
    assert set(plain.data_vars) == {"tth", "chi", "q", "r", "solid_angle", "polarization"}
    assert flipped.attrs["poni_flip"] == 1


def test_maps_are_cached_and_read_only(ceo2_poni):
    geo = geometry.read_poni(ceo2_poni)
    first = geometry.pixel_array(geo, SHAPE, "q_nm^-1")
    again = geometry.pixel_array(geometry.read_poni(ceo2_poni), SHAPE, "q_nm^-1")
    assert first is again  # same geometry and shape: one computation
    with pytest.raises(ValueError):
        first[0, 0] = 0


def test_as_geometry_from_every_kind(ceo2_poni):
    geo = geometry.read_poni(ceo2_poni)
    assert geometry.as_geometry(str(ceo2_poni)) == geo
    assert geometry.as_geometry(_reference(ceo2_poni)) == geo
    assert geometry.as_geometry(geo.integrator.get_config()) == geo
    ds = xr.Dataset(attrs={"poni": str(ceo2_poni), "poni_flip": 1})
    assert geometry.as_geometry(ds) == geometry.as_geometry(geo, flip=True)
    with pytest.raises(OptionError, match="poni=PATH"):
        geometry.as_geometry(xr.Dataset(attrs={"source": "run.tif"}))
    with pytest.raises(OptionError):
        geometry.as_geometry(3.0)


def test_write_poni_round_trips_with_flip(ceo2_poni, tmp_path):
    geo = geometry.read_poni(ceo2_poni, flip=True).with_(dist=0.25)
    out = geometry.write_poni(geo, tmp_path / "refined.poni")
    back = geometry.read_poni(out)
    assert back == geo and back.flip
    assert _reference(out).dist == pytest.approx(0.25)  # pyFAI itself reads it
    assert [p.name for p in tmp_path.iterdir()] == ["refined.poni"]  # no temporary left


def test_shape_mismatch_names_the_poni(tmp_path, ceo2_poni):
    ai = _reference(ceo2_poni)
    ai.detector = detector_factory("Pilatus100k")  # a named detector knows its 195 x 487 shape
    path = tmp_path / "p100k.poni"
    ai.write(str(path))
    with pytest.raises(FormatError, match="p100k.poni"):
        geometry.pixel_array(path, SHAPE, "2th_deg")


@pytest.mark.parametrize(
    "text",
    ["", "Distance: 0.1\n", "Distance: abc\nPoni1: 0.1\nPoni2: 0.1\nPixelSize1: 1e-4\n"],
)
def test_garbage_poni_is_a_format_error(tmp_path, text):
    path = tmp_path / "bad.poni"
    path.write_text(text)
    with pytest.raises(FormatError, match="bad.poni"):
        geometry.read_poni(path)


def test_missing_or_binary_poni(tmp_path, shared_data):
    with pytest.raises(SourceNotFoundError, match="nope.poni"):
        geometry.read_poni(tmp_path / "nope.poni")
    with pytest.raises(BeamcatError, match="CeO2_Pilatus1M.tif"):
        geometry.read_poni(shared_data / "dioptas" / "CeO2_Pilatus1M.tif")


def test_calibrate_and_rings_are_reachable_from_geometry():
    # the API names them geometry.calibrate / geometry.rings; they live in calibrant
    from beamcat.analyses import calibrant
    from beamcat.analyses.geometry import calibrate, rings

    assert calibrate is calibrant.calibrate and rings is calibrant.rings
    with pytest.raises(AttributeError):
        geometry.no_such_name  # noqa: B018
