"""The demo data set: every entry opens lazily, and the data agree with their ground truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import platformdirs
import pytest
from scipy.ndimage import map_coordinates

import beamcat
from beamcat.catalog import demo
from beamcat.catalog.build import describe_entries
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.demo import gainmap, read_truth
from beamcat.errors import OptionError

#: entry -> sizes of its signal's dims
EXPECTED = {
    "imat_dark": {"frame": 5, "y": 256, "x": 320},
    "imat_flat": {"frame": 10, "y": 256, "x": 320},
    "imat_run": {"frame": 48, "y": 256, "x": 320},
    "imat_frame_log": {"time": 48},
    "imat_massspec": {"time": 330},
    "imat_temperature": {"time": 700},
    "femtomax_scan": {"frame": 60, "y": 256, "x": 256},
    **{f"gainmap_pos{k}": {"frame": 2, "y": 195, "x": 487} for k in range(1, 6)},
    "stem4d_scan": {"scan_y": 32, "scan_x": 32, "y": 128, "x": 128},
    "stem4d_au_reference": {"scan_y": 8, "scan_x": 8, "y": 128, "x": 128},
    "stem4d_edx": {"scan_y": 32, "scan_x": 32, "energy": 1024},
    "spice_window0": {"time": 1, "wavelength": 60, "y": 96, "x": 48},
    **{f"spice_window{w}": {"time": 1, "wavelength": 32, "y": 96, "x": 48} for w in (1, 2, 3)},
    "diffraction_ceo2": {"frame": 1, "y": 407, "x": 487},
}
#: entries that carry their detector geometry (``poni=``) -> the PONI beside the data
PONIS = {
    "femtomax_scan": "photon/scan_0007.poni",
    **{f"gainmap_pos{k}": f"gainmap/pos{k}.poni" for k in range(1, 6)},
    "diffraction_ceo2": "diffraction/CeO2_Pilatus200K.poni",
}


@pytest.fixture(scope="session")
def catalog(demo_dir):
    return open_catalog(demo_dir / demo.CATALOG_NAME)


def _read(catalog, name):
    return catalog[name].read()


def test_catalog_lists_every_entry_with_metadata(catalog):
    rows = {row["name"]: row for row in describe_entries(catalog)}
    assert set(rows) == set(EXPECTED)
    for name, row in rows.items():
        for key in ("instrument", "sample", "run", "description"):
            assert row["metadata"].get(key), f"{name}: metadata {key} missing"
        # sources are stored relative to the catalog, so the demo folder can move
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        assert all(s.startswith("{CATALOG_DIR}/") for s in sources), name
        # and so are the PONI files of the entries that carry a geometry
        poni = row["options"].get("poni")
        assert poni == (f"{{CATALOG_DIR}}/{PONIS[name]}" if name in PONIS else None), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_opens_lazily_with_expected_shape(catalog, demo_dir, name, raise_if_dask_computes):
    with raise_if_dask_computes():
        ds = _read(catalog, name)
    signal = ds[ds.attrs["signal"]]
    assert dict(zip(signal.dims, signal.shape, strict=True)) == EXPECTED[name]
    if signal.ndim > 1:
        assert signal.chunks is not None, f"{name}: pixel data must stay dask-backed"
    if name in PONIS:  # the geometry travels in attrs, as an absolute path
        assert ds.attrs["poni"] == str(demo_dir.resolve() / PONIS[name])
        assert ds.attrs["poni_flip"] == 0


def test_make_demo_refuses_a_folder_that_holds_one(demo_dir):
    with pytest.raises(OptionError, match="already holds"):
        demo.make_demo(demo_dir)


# --- radiography --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def radiography(catalog, demo_dir):
    dark = _read(catalog, "imat_dark").counts.mean("frame").values
    flat = _read(catalog, "imat_flat").counts.mean("frame").values - dark
    run = _read(catalog, "imat_run").counts.values.astype(np.float64)
    return (run - dark) / flat, read_truth(demo_dir / "radiography")


def _roi(images: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return images[..., y : y + h, x : x + w]


def test_radiography_roi_transmission_matches_truth(radiography):
    ratio, (scalars, arrays) = radiography
    clean = ratio.copy()
    frame, y, x = arrays["outliers"][:, :3].T
    clean[frame, y, x] = np.nan  # the planted gamma spots are not part of the transmission
    rois = scalars["rois"]
    air = np.nanmean(_roi(clean, *rois["air"]), axis=(1, 2))
    # the open-beam region measures the source drift
    np.testing.assert_allclose(air, arrays["drift"], rtol=1e-3)
    for i, region in enumerate(scalars["regions"]):
        measured = np.nanmean(_roi(clean, *rois[region]), axis=(1, 2)) / air
        # per pixel ~1.8 % Poisson noise (>= 3000 counts) over >= 600 ROI pixels: 0.07 %;
        # 0.3 % is > 4 sigma
        np.testing.assert_allclose(
            measured, arrays["transmission"][:, i], rtol=3e-3, err_msg=region
        )


def test_radiography_outliers_are_where_the_truth_says(radiography, catalog):
    _, (_, arrays) = radiography
    run = _read(catalog, "imat_run").counts
    frame, y, x, added = arrays["outliers"].T
    spots = run.values[frame, y, x].astype(np.int64)
    # a spot adds >= 3000 counts on top of a pixel of at most ~12000
    assert np.all(spots >= np.minimum(3000 + 1000, 65535))
    median = np.median(run.values[:, 100:110, 20:30])
    assert np.all(spots > median + 2500)


def test_radiography_beer_lambert_truth_is_consistent(radiography):
    _, (scalars, arrays) = radiography
    # the original scripts' conversion: mmol/cm3 from -ln T relative to the first frame
    conc = (
        1000
        * -np.log(arrays["transmission_relative"])
        / scalars["thickness_cm"]
        / scalars["cross_section_barn"]
        / 1e-24
        / scalars["avogadro"]
    )
    np.testing.assert_allclose(conc, arrays["concentration"], atol=1e-9)
    top = scalars["regions"].index("bed_top")
    assert arrays["concentration"][-1, top] > 2.0  # near-saturated by the end of the run


def test_radiography_logs_align_with_the_frames(catalog, demo_dir):
    scalars, arrays = read_truth(demo_dir / "radiography")
    log = _read(catalog, "imat_frame_log")
    np.testing.assert_array_equal(log.time.values, arrays["frame_end"])
    run = _read(catalog, "imat_run")
    np.testing.assert_array_equal(run.time.values, arrays["frame_end"])
    # the Ar tracer steps up when the gas reaches the bed: half height within one RGA cycle (12.3 s)
    ms = _read(catalog, "imat_massspec")
    argon = ms.Argon.values
    half = ms.time.values[np.argmax(argon > (argon.min() + argon.max()) / 2)]
    event = np.datetime64(pd.Timestamp(scalars["massspec_event_time"]).tz_localize(None), "ns")
    assert abs((half - event) / np.timedelta64(1, "s")) <= 12.3
    # the exotherm peaks a few minutes after the uptake starts
    temp = _read(catalog, "imat_temperature")
    peak = temp.time.values[np.argmax(temp.Temp2.values)]
    assert np.timedelta64(60, "s") < peak - event < np.timedelta64(900, "s")


# --- single photon ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photon(catalog, demo_dir):
    ds = _read(catalog, "femtomax_scan")
    return ds, ds.counts.values.astype(np.float64), read_truth(demo_dir / "photon")


def test_photon_roi_sums_match_planted_photons(photon):
    ds, frames, (scalars, arrays) = photon
    signal = _roi(frames, *scalars["roi"]) - scalars["background"]
    per_step = signal.mean(axis=(1, 2)).reshape(-1, scalars["frames_per_step"]).mean(1)
    # read noise 3 ADU over 4096 px x 6 frames: 0.02 ADU; rounding adds less; 0.1 ADU is 5 sigma
    np.testing.assert_allclose(per_step, arrays["roi_mean"], atol=0.1)
    # the motor positions of each frame's step
    np.testing.assert_allclose(ds[scalars["motor"]].values, np.repeat(scalars["positions"], 6))


def test_photon_hits_energies_and_hot_pixels(photon):
    _, frames, (scalars, arrays) = photon
    bg = scalars["background"]
    for events in (arrays["photons"], arrays["pileups"]):
        f, y, x, energy = events.T
        iy, ix, f = np.rint(y).astype(int), np.rint(x).astype(int), f.astype(int)
        boxes = sum(frames[f, iy + dy, ix + dx] - bg for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        # 3x3 box: read noise 3 ADU x 3 = 9 ADU sd, plus rounding; 50 ADU is > 5 sigma
        np.testing.assert_allclose(boxes, energy, atol=50)
    assert np.all(np.abs(arrays["pileups"][:, 3] - 2 * scalars["photon_adu"]) < 200)
    hy, hx, excess = arrays["hot_pixels"].T
    measured = np.median(frames[:, hy.astype(int), hx.astype(int)], axis=0) - bg
    np.testing.assert_allclose(measured, excess, atol=3)  # median of 60 frames, sd 3 ADU


# --- gain map -----------------------------------------------------------------------------


def test_gainmap_geometry_matches_pyfai():
    # pyFAI 2026.9.0 Geometry(...).tth / .chi (path='tan'), pixel centres, position 3, computed once
    geo = gainmap.pyfai_geometry(gainmap.SHAPE, gainmap.POSITIONS[2])
    reference = {
        (0, 0): (0.12106334441920134, -2.4988414388541376),
        (194, 486): (0.3235240164893393, 0.28464674074077606),
        (97, 243): (0.11156357957521992, 0.09254888898558883),
    }
    for (y, x), (tth, chi) in reference.items():
        assert geo["tth"][y, x] == pytest.approx(tth, abs=1e-12)  # same float64 formula
        assert geo["chi"][y, x] == pytest.approx(chi, abs=1e-12)


def test_gainmap_poni_files_and_images_match_truth(catalog, demo_dir):
    scalars, arrays = read_truth(demo_dir / "gainmap")
    for k, poni in enumerate(scalars["positions"], start=1):
        text = (demo_dir / "gainmap" / f"pos{k}.poni").read_text()
        written = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        for key in ("Distance", "Poni1", "Poni2", "Rot1", "Rot2", "Rot3", "Wavelength"):
            assert float(written[key]) == pytest.approx(poni[key], rel=1e-12)
        ds = _read(catalog, f"gainmap_pos{k}")
        images = ds.counts.values
        assert images.dtype == np.int32
        dead = arrays["dead"]
        assert np.all(np.isin(images[:, dead], (-1, 0)))
        i = k - 1
        expected = (
            scalars["exposure_s"]
            * np.interp(
                arrays["tth_deg"][i], arrays["profile_tth_deg"], arrays["profile_intensity"]
            )
            * arrays["polarization"][i]
            * arrays["solid_angle"][i]
        )
        good = ~dead & ~arrays["damaged"] & ~arrays["beamstop"][i]
        ratio = images.mean(0)[good] / expected[good]
        # per pixel, 2 frames of >= 4000 counts: ~1.1 % Poisson noise against a 3 % gain spread
        residual = ratio / arrays["gain"][good] - 1
        assert np.abs(np.median(residual)) < 2e-3
        assert np.std(residual) < 0.015
        assert np.corrcoef(ratio, arrays["gain"][good])[0, 1] > 0.85
        # the beam stop shadow is dark
        assert np.median(images.mean(0)[arrays["beamstop"][i]]) < 0.05 * np.median(expected)


# --- X-ray diffraction --------------------------------------------------------------------


def _config(ai) -> dict:
    """pyFAI's configuration as truth.json holds it (JSON: enums as ints, tuples as lists)."""
    return json.loads(json.dumps(ai.get_config()))


def test_diffraction_image_is_pyfai_calibrant_image_with_noise_and_gaps(catalog, demo_dir):
    from pyFAI import load
    from pyFAI.calibrant import get_calibrant

    scalars, arrays = read_truth(demo_dir / "diffraction")
    ds = _read(catalog, "diffraction_ceo2")
    ai = load(ds.attrs["poni"])  # the PONI the entry carries is the truth's geometry
    assert _config(ai) == scalars["poni"]
    assert ai.energy * 1000 == pytest.approx(scalars["energy"], rel=1e-12)
    # the noise-free image is pyFAI's own calibrant image for that geometry (float32 stored)
    calibrant = get_calibrant(scalars["calibrant"])
    calibrant.wavelength = ai.wavelength
    rings = calibrant.fake_calibration_image(
        ai, shape=arrays["expected"].shape, resolution=scalars["ring_fwhm_deg"]
    )
    gap = arrays["gap"]
    model = scalars["background_counts"] + scalars["peak_counts"] * rings
    np.testing.assert_allclose(arrays["expected"][~gap], model[~gap], rtol=1e-6)
    image = ds.counts.values[0]
    np.testing.assert_array_equal(image == -2, gap)  # the module gap, and only it, reads -2
    assert gap[195:212].all() and gap.sum() == 17 * 487
    # Poisson noise: standardised residuals over ~190k pixels have mean 0 and sd 1 (+-0.01)
    z = (image[~gap] - model[~gap]) / np.sqrt(model[~gap])
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # the rings sit where pyFAI's CeO2 d-spacings put them: pyFAI's own 1D pattern of the
    # image peaks near each reflection with counts. pyFAI's fake image samples its pattern
    # every 0.045 deg (634 points over 0-28.6 deg), so a peak is off by up to half of that,
    # plus one of our 0.019-deg bins: 0.045 deg
    result = ai.integrate1d(
        image, 1500, unit="2th_deg", mask=gap, method=("no", "histogram", "cython")
    )
    for tth in scalars["ring_tth_deg"]:
        near = np.abs(result.radial - tth) < 0.15
        if result.intensity[near].max() > 3 * scalars["background_counts"]:
            assert abs(result.radial[near][np.argmax(result.intensity[near])] - tth) <= 0.045


def test_femtomax_poni_puts_the_insb_111_reflection_on_the_bragg_spot(catalog, demo_dir):
    from pyFAI import load

    scalars, _ = read_truth(demo_dir / "photon")
    ai = load(_read(catalog, "femtomax_scan").attrs["poni"])
    assert _config(ai) == scalars["poni"]
    tth = ai.array_from_unit((256, 256), "center", "2th_deg", scale=True)
    d_111 = 6.4794e-10 / np.sqrt(3)  # InSb, a = 6.4794 Angstrom
    expected = np.rad2deg(2 * np.arcsin(ai.wavelength / (2 * d_111)))
    assert tth[128, 144] == pytest.approx(expected, abs=1e-9)  # the spot's centre pixel


# --- 4D-STEM ------------------------------------------------------------------------------


def test_stem4d_flyback_frames_are_detected(catalog, demo_dir):
    scalars, arrays = read_truth(demo_dir / "stem4d")
    ds = _read(catalog, "stem4d_scan")
    assert [ds.sizes["scan_y"], ds.sizes["scan_x"]] == scalars["scan_shape"]
    assert np.all(ds.exposure.values == scalars["exposure_s"])
    raw = beamcat.open_dataset(ds.attrs["source"], format="mib", flyback=False)
    assert raw.sizes["frame"] == scalars["raw_frames"]
    longest = np.flatnonzero(raw.exposure.values == scalars["flyback_exposure_s"])
    np.testing.assert_array_equal(longest, arrays["flyback_frames"])


def test_stem4d_au_ring_ellipse_matches_truth(catalog, demo_dir):
    scalars, _ = read_truth(demo_dir / "stem4d")
    mean = _read(catalog, "stem4d_au_reference").counts.mean(("scan_y", "scan_x")).values
    ellipse = scalars["ellipse"]
    radii = np.arange(42.0, 52.0, 0.05)  # 220 only: 200 is at 34 px, 311 at 54-56 px
    for angle, expected in (
        (ellipse["theta"], ellipse["a"]),
        (ellipse["theta"] + np.pi / 2, ellipse["b"]),
    ):
        profile = 0
        for direction in (angle, angle + np.pi):  # both sides of the centre
            xs = ellipse["x0"] + radii * np.cos(direction)
            ys = ellipse["y0"] + radii * np.sin(direction)
            profile = profile + map_coordinates(mean, [ys, xs], order=1)
        # the 220 ring along the major and minor axes: a and b differ by 1.4 px; 64 frames of
        # ~9 counts on the ring find its peak to a few tenths of a pixel
        assert radii[np.argmax(profile)] == pytest.approx(expected, abs=0.4)


def test_stem4d_au_dark_field_follows_au_map(catalog, demo_dir):
    scalars, arrays = read_truth(demo_dir / "stem4d")
    ds = _read(catalog, "stem4d_scan")
    r = arrays["radius_px"]
    ring = scalars["rings"]["111"]["radius_px"]
    annulus = np.abs(r - ring) < 1.5
    dark_field = ds.counts.values[:, :, annulus].sum(-1)
    # Au ring counts vs Poisson noise of the carbon halo: correlation stays high
    assert np.corrcoef(dark_field.ravel(), arrays["au_fraction"].ravel())[0, 1] > 0.95


# --- SPICE --------------------------------------------------------------------------------


def _spice_model(arrays, lines, w, wave):
    model = arrays[f"background_{w}"][None].copy()
    for line in lines:
        centre, width = arrays[f"{line}_center"], arrays[f"{line}_width"]
        model = model + arrays[f"{line}_intensity"] * np.exp(
            -((wave[:, None, None] - centre) ** 2) / (2 * width**2)
        )
    return model


def test_spice_spectra_match_the_planted_lines(catalog, demo_dir):
    from astropy.io import fits
    from sospice import spice_error

    scalars, arrays = read_truth(demo_dir / "spice")
    spikes = arrays["spikes"]
    for w, window in enumerate(scalars["windows"]):
        ds = _read(catalog, f"spice_window{w}")
        data = ds.radiance.values[0].astype(np.float64)  # (wavelength, y, x)
        wave = ds.wavelength.values
        step = window["wavelength_step"]
        expected_wave = window["wavelength_start"] + np.arange(wave.size) * step
        np.testing.assert_allclose(wave, expected_wave, atol=1e-4)  # float32 WCS in nm
        mine = spikes[spikes[:, 0] == w].astype(int)
        clean = np.ones(data.shape, dtype=bool)
        clean[mine[:, 2], mine[:, 3], mine[:, 4]] = False
        model = _spice_model(arrays, window["lines"], w, wave)
        # each spike sits far above the spectrum around it (they add >= 30)
        spiked = data[~clean] - model[~clean]
        assert np.all(spiked > 20)
        # the rest is the model plus the documented noise: sospice's sigma of the model,
        # computed here from the file's own header (it carries every keyword sospice reads)
        header = fits.getheader(demo_dir / "spice" / scalars["file"], w)
        sigma = spice_error(data=model.copy(), header=header, verbose=False)[1]["Total"].value
        np.testing.assert_allclose(sigma, arrays[f"sigma_{w}"], rtol=1e-6)  # stored as float32
        z = ((data - model) / sigma)[clean]
        assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02  # > 100k samples
        # the spectrum's peak: intensity centroid within +-2.5 widths of the REST wavelength
        line = max(window["lines"], key=lambda name: arrays[f"{name}_intensity"].mean())
        rest = scalars["lines"][line]["rest_wavelength"]
        near = np.abs(wave - rest) < 2.5 * arrays[f"{line}_width"].mean()
        weights = np.clip(data[near] - arrays[f"background_{w}"], 0, None)
        weights[~clean[near]] = 0
        centroid = (wave[near, None, None] * weights).sum(0) / weights.sum(0)
        error = centroid - arrays[f"{line}_center"]
        # shifts reach +-0.05 A (15 km/s); the centroid of ~20 noisy pixels is good to ~0.02 A,
        # so the planted velocity pattern shows through (weakest line, Mg IX: r ~ 0.7)
        assert np.median(np.abs(error)) < 0.02, line
        assert np.corrcoef(centroid.ravel(), arrays[f"{line}_center"].ravel())[0, 1] > 0.5, line


# --- the cache ----------------------------------------------------------------------------


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda name: str(tmp_path / name))
    return tmp_path / "beamcat" / f"demo-{demo.generator_key()}"  # keyed by the generator


def _fake_make_demo(calls):
    def make(directory, *, seed=0):
        calls.append(directory)
        (directory / demo.CATALOG_NAME).write_text("version: 2\n")
        return directory / demo.CATALOG_NAME

    return make


def test_ensure_demo_generates_once_and_reuses(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "make_demo", _fake_make_demo(calls))
    first = demo.ensure_demo()
    assert first == cache / demo.CATALOG_NAME and first.exists()
    mtime = os.stat(first).st_mtime_ns
    assert demo.ensure_demo() == first
    assert len(calls) == 1 and os.stat(first).st_mtime_ns == mtime
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp folder left


def test_ensure_demo_leaves_nothing_when_interrupted(cache, monkeypatch):
    def broken(directory, *, seed=0):
        (directory / "radiography").mkdir()  # half written...
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "make_demo", broken)
    with pytest.raises(KeyboardInterrupt):
        demo.ensure_demo()
    assert not cache.exists() and list(cache.parent.iterdir()) == []
    calls = []
    monkeypatch.setattr(demo, "make_demo", _fake_make_demo(calls))
    assert demo.ensure_demo().exists() and len(calls) == 1


def test_ensure_demo_replaces_a_cache_folder_without_catalog(cache, monkeypatch):
    (cache / "radiography").mkdir(parents=True)  # e.g. someone deleted catalog.yaml
    calls = []
    monkeypatch.setattr(demo, "make_demo", _fake_make_demo(calls))
    assert demo.ensure_demo().exists() and len(calls) == 1
    assert not (cache / "radiography").exists()


def test_cache_is_keyed_by_the_generator_sources(cache, monkeypatch, tmp_path):
    # the issue: the key was the package version, so a changed generator was not regenerated
    sources = Path(demo.__file__).parent
    copy = tmp_path / "sources"
    copy.mkdir()
    for path in sources.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    assert demo.generator_key(copy) == demo.generator_key() == demo.generator_key(sources)
    with open(copy / "radiography.py", "a") as f:
        f.write("\n# a changed generator\n")
    changed = demo.generator_key(copy)
    assert changed != demo.generator_key()
    calls = []
    monkeypatch.setattr(demo, "make_demo", _fake_make_demo(calls))
    first = demo.ensure_demo()
    assert first.parent == cache and len(calls) == 1
    monkeypatch.setattr(demo, "generator_key", lambda folder=None: changed)
    second = demo.ensure_demo()  # the changed generator's demo: made anew, beside the old
    assert second.parent.name == f"demo-{changed}" and len(calls) == 2
    assert first.exists()


def test_open_catalog_without_path_opens_the_cached_demo(cache, demo_dir, monkeypatch):
    cache.parent.mkdir(parents=True)
    os.symlink(demo_dir, cache)  # a finished demo in the cache: opened, not regenerated
    monkeypatch.setattr(demo, "make_demo", lambda *a, **k: pytest.fail("regenerated"))
    assert set(beamcat.open_catalog()) == set(EXPECTED)
