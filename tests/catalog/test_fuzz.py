"""Fuzzing every reader: damaged files open correctly, open what is whole and say so, or fail.

A seeded mutation loop (deterministic: the same cases every run) over small
real files from ``../shared/data`` and, where a format has no small real file,
files the package's own writers make. Each seed file is mutated several ways:

- truncated at random offsets, and exactly at frame or item boundaries;
- bytes flipped (mostly in the first 4 KiB, where the headers are);
- random bytes appended;
- opened as another format (by ``format=``) and under another format's suffix;
- text logs: lines mangled (a cell garbled, a field dropped or added, a 200 kB
  cell, a line blanked).

Every case is opened and computed. The outcome must be

1. a `BeamcatError` whose message names the file; or
2. a Dataset whose computed signal has the shape the Dataset declares, and --
   when the mutation left the headers intact (truncation, appended bytes) --
   the intact file's dims and sizes, unless the reader opened what is whole
   with a `BeamcatWarning` and one of the `PARTIAL` attrs (then only the
   leading, frame-like dim may be shorter: nothing is reshaped).

Anything else (another exception type, a hang -- bounded by pytest-timeout --
or a silently shorter or reshaped array) fails, listing every bad case. A log
cut exactly at a line end is indistinguishable from a shorter log (the formats
carry no row count), so text seeds are cut inside lines only.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dask
import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr
from astropy.io import fits

import beamcat
from beamcat.catalog.cbor_stream_write import write_recording
from beamcat.catalog.logs import write_imat_log
from beamcat.catalog.mib_header import read_frame_headers
from beamcat.catalog.photon_list import write_photon_list
from beamcat.errors import BeamcatError, BeamcatWarning

#: attrs with which a reader says it opened only what is whole
PARTIAL = ("frames_missing", "cut_line", "series_end", "frames_without_position")
#: what each format's file is called when a seed is opened "as another format"
SUFFIX = {
    "tiff": ".tif",
    "fits": ".fits",
    "spice": ".fits",
    "mib": ".mib",
    "hdf5": ".h5",
    "cbor-stream": ".cbors",
    "massspec-csv": ".csv",
    "temperature-log": ".csv",
    "imat-log": ".csv",
    "photon-list": ".h5",
}


@dataclass
class Seed:
    """A file to mutate, the files that go with it unchanged, and how to open them."""

    path: Path
    format: str
    companions: list[Path] = field(default_factory=list)
    boundaries: list[int] = field(default_factory=list)  # byte offsets of frames / items
    text: bool = False


# --- seeds: small real files, and writer-made ones where no small real file exists ----------


def _mib(shared, tmp, name):
    path = shared / "rosettasciio_mib" / name
    frame = read_frame_headers(path, hdr_depth=None, timezone="UTC").layout.frame_size
    size = path.stat().st_size
    return Seed(path, "mib", [path.with_suffix(".hdr")], list(range(frame, size, frame)))


def _fits(shared, tmp):
    path = tmp / "camera.fits"
    data = np.arange(3 * 20 * 16, dtype=np.uint16).reshape(3, 20, 16)
    fits.PrimaryHDU(data, header=fits.Header({"DATE-OBS": "2024-03-05T10:00:00"})).writeto(path)
    return Seed(path, "fits")


def _nexus(shared, tmp):
    path = tmp / "scan.nxs"
    data = np.arange(6 * 24 * 20, dtype=np.int32).reshape(6, 24, 20)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(1, 24, 20), compression="gzip")
    return Seed(path, "hdf5")


def _tiff(shared, tmp, **kwargs):
    path = tmp / f"frame_{len(kwargs)}.tif"
    tifffile.imwrite(path, np.arange(40 * 30, dtype=np.uint16).reshape(40, 30), **kwargs)
    return Seed(path, "tiff")


def _recording(shared, tmp):
    frames = np.arange(12 * 6 * 5, dtype=np.uint16).reshape(12, 6, 5)
    detector, sardana = write_recording(
        tmp, "scan", frames, motor={"m": [1.0, 2.0, 3.0]}, frames_per_point=4,
        energy=8000.0, exposure=0.1, start_time="2024-11-21T11:21:03", gzip=False,
    )  # fmt: skip
    data = detector.read_bytes()
    # item boundaries: each item starts with the self-described tag d9 d9 f7
    starts = [i for i in range(1, len(data)) if data.startswith(b"\xd9\xd9\xf7", i)]
    return Seed(detector, "cbor-stream", [sardana], starts)


def _photon_list(shared, tmp):
    rng = np.random.default_rng(5)
    n = 300
    events = xr.Dataset(
        {
            "frame": ("event", np.sort(rng.integers(0, 20, n))),
            "y": ("event", rng.uniform(0, 60, n)),
            "x": ("event", rng.uniform(0, 80, n)),
            "energy": ("event", rng.normal(1250, 40, n)),
        },
        attrs={"threshold": 8, "energy_min": 1100, "frame_shape": [64, 96]},
    )
    return Seed(write_photon_list(events, tmp / "scan_integrated.h5"), "photon-list")


def _imat_log(shared, tmp):
    times = np.datetime64("2024-12-13T11:00:00") + np.arange(8) * np.timedelta64(30, "s")
    path = write_imat_log(tmp / "IMAT00042_log.csv", times, monbefore=np.arange(8) * 99)
    return Seed(path, "imat-log", text=True)


SEEDS = {
    "mib-9-frames-raw": lambda s, t: _mib(
        s, t, "Merlin_Single_Quad/Single_9_Frame_CounterDepth_1_Rows_256RAW.mib"
    ),
    "mib-4x2-scan": lambda s, t: _mib(
        s,
        t,
        "Merlin_navigation4x2_signalNx256_ROI/"
        "003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib",
    ),
    "spice-header-only": lambda s, t: Seed(
        s / "sunraster_spice/solo_L2_spice-n-sit_20200620T235901_V01_16777431-000.fits", "spice"
    ),
    "spice-with-data": lambda s, t: Seed(
        s / "solo_spice_ql/solo_L2_spice-n-exp_20240101T213346_V02_234881027-000.fits", "spice"
    ),
    "fits-cube": _fits,
    "nexus-gzip": _nexus,
    "tiff-plain": _tiff,
    "tiff-deflate": lambda s, t: _tiff(s, t, compression="zlib"),
    "tiff-real": lambda s, t: Seed(s / "waterinsand_neutra/bb_masked.tif", "tiff"),
    "cbor-recording": _recording,
    "photon-list": _photon_list,
    "massspec-real": lambda s, t: Seed(
        s / "imat_roi_analysis/example-ms.csv", "massspec-csv", text=True
    ),
    "temperature-real": lambda s, t: Seed(
        s / "imat_roi_analysis/example-temp.csv", "temperature-log", text=True
    ),
    "imat-log": _imat_log,
}


# --- mutations ------------------------------------------------------------------------------


def _cases(seed: Seed, data: bytes, rng: random.Random) -> list[tuple[str, bytes, str, str]]:
    """(description, bytes, suffix, format to open with; "" = sniff) of every case of a seed."""
    suffix, fmt = "".join(seed.path.suffixes[-1:]), seed.format
    cases = []
    for _ in range(8):
        at = rng.randrange(1, len(data))
        while seed.text and data[at - 1 : at] == b"\n":  # a cut at a line end: see docstring
            at = rng.randrange(1, len(data))
        cases.append((f"cut at {at}", data[:at], suffix, fmt))
    for at in rng.sample(seed.boundaries, min(3, len(seed.boundaries))):
        cases.append((f"cut at frame/item boundary {at}", data[:at], suffix, fmt))
    for near in (True,) * 5 + (False,) * 3:
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(data), 4096) if near else len(data))
            flipped[at] ^= 1 << rng.randrange(8)
        cases.append(("bytes flipped", bytes(flipped), suffix, fmt))
    for n in (rng.randint(1, 64), rng.randint(1000, 5000)):
        cases.append((f"{n} bytes appended", data + rng.randbytes(n), suffix, fmt))
    other = rng.choice(sorted(set(SUFFIX) - {fmt}))
    cases.append((f"opened as {other}", data, SUFFIX[other], other))
    other = rng.choice(sorted(set(SUFFIX) - {fmt}))
    cases.append((f"named {SUFFIX[other]}, sniffed", data, SUFFIX[other], ""))
    if seed.text:
        cases += [(what, mangled, suffix, fmt) for what, mangled in _mangled(data, rng)]
    return cases


def _mangled(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    lines = data.split(b"\n")
    out = []
    for what in ("cell garbled", "field dropped", "field added", "200 kB cell", "line blanked"):
        i = rng.randrange(len(lines) - 1)  # the last "line" is the empty tail
        line = lines[i]
        sep = b"," if b"," in line else b" "
        cells = line.split(sep)
        j = rng.randrange(len(cells))
        if what == "cell garbled":
            cells[j] = cells[j][:1] + b"x#" + cells[j][1:]
        elif what == "field dropped" and len(cells) > 1:
            del cells[j]
        elif what == "field added":
            cells.insert(j, b"7")
        elif what == "200 kB cell":
            cells[j] = b'"' + b"9" * 200_000 + b'"'
        else:
            cells = [b""]
        mangled = [*lines[:i], sep.join(cells), *lines[i + 1 :]]
        out.append((f"line {i + 1}: {what}", b"\n".join(mangled)))
    return out


# --- the oracle -----------------------------------------------------------------------------


def _open(paths: Path | list[Path], fmt: str):
    """Open and compute; (Dataset or None, BeamcatError or None, BeamcatWarnings)."""
    with warnings.catch_warnings(record=True) as caught, dask.config.set(scheduler="sync"):
        warnings.simplefilter("always")
        try:
            ds = beamcat.open_dataset(paths, format=fmt or None)
            declared = ds[ds.attrs["signal"]].shape
            ds = ds.load()
            error = None
        except BeamcatError as err:
            ds, declared, error = None, None, err
    said = [w for w in caught if issubclass(w.category, BeamcatWarning)]
    if ds is not None and ds[ds.attrs["signal"]].shape != declared:
        raise AssertionError(f"computed {ds[ds.attrs['signal']].shape}, declared {declared}")
    return ds, error, said


def _verdict(ds, error, said, intact, *, name: str, headers_intact: bool) -> str | None:
    """Why an outcome breaks the rules of the module docstring; None when it keeps them."""
    if error is not None:
        return None if name in str(error) else f"error does not name {name}: {error}"
    if not headers_intact:
        return None
    got, want = ds[ds.attrs["signal"]], intact[intact.attrs["signal"]]
    if got.sizes == want.sizes:
        return None
    partial = [key for key in PARTIAL if key in ds.attrs]
    if not (partial and said):
        return f"silently {dict(got.sizes)} instead of {dict(want.sizes)}"
    image = got.shape[1:]  # the frame-like dim first; what follows must be as intact
    if image != want.shape[want.ndim - len(image) :] or got.size >= want.size:
        return f"partial open {dict(got.sizes)} is not a shorter {dict(want.sizes)}"
    return None


@pytest.mark.timeout(300)  # a hang fails the test instead of blocking the suite
@pytest.mark.parametrize("seed_name", list(SEEDS))
def test_damaged_files_fail_clearly_or_open_what_is_whole(seed_name, shared_data, tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    seed = SEEDS[seed_name](shared_data, made)
    together = seed.format == "cbor-stream"  # the detector stream opens with its sardana one
    intact, error, _ = _open([seed.path, *seed.companions] if together else seed.path, seed.format)
    assert error is None, f"the intact seed does not open: {error}"
    data = seed.path.read_bytes()
    # the same cases every run; BEAMCAT_FUZZ_SALT=<text> draws other cases, to explore
    rng = random.Random(seed_name + os.environ.get("BEAMCAT_FUZZ_SALT", ""))
    failures = []
    for number, (what, content, suffix, fmt) in enumerate(_cases(seed, data, rng)):
        folder = tmp_path / f"case{number}"
        folder.mkdir()
        path = folder / (seed.path.name.split(".")[0] + suffix)
        path.write_bytes(content)
        companions = [shutil.copy(c, folder / c.name) for c in seed.companions]  # intact
        sources = [path, *companions] if together and fmt == "cbor-stream" else path
        try:
            ds, error, said = _open(sources, fmt)
        except Exception as err:  # the point: no other exception type
            failures.append(f"{what}: {type(err).__name__}: {err}"[:300])
            continue
        headers_intact = fmt == seed.format and (what.startswith("cut") or "appended" in what)
        verdict = _verdict(ds, error, said, intact, name=path.name, headers_intact=headers_intact)
        if verdict:
            failures.append(f"{what}: {verdict}"[:300])
    assert not failures, f"{seed_name}: {len(failures)} of {number + 1} cases bad:\n" + "\n".join(
        failures
    )
