"""Lambda module files (m1, m2, m3) are placed by their NeXus translations, not stacked."""

import h5py
import numpy as np
import pytest

import beamcat
from beamcat.catalog.hdf5 import open_hdf5
from beamcat.errors import FormatError

LAMBDA = "dioptas/lambda"
DATA = "entry/instrument/detector/data"


@pytest.fixture(scope="module")
def module_files(shared_data):
    return sorted((shared_data / LAMBDA).glob("*_m?_part00000.nxs"))


def _dioptas_image(files, frame):
    """A NumPy twin of Dioptas' LambdaLoader.get_image, written from its description.

    Offsets: x minus the smallest x, y minus the first module's y; a zero canvas of
    the bounding shape; each module's frame pasted at its offset; flipped vertically.
    """
    frames, positions = [], []
    for name in files:
        with h5py.File(name, "r") as f:
            frames.append(f[DATA][frame])
            positions.append(np.ravel(f["entry/instrument/detector/translation/distance"][()]))
    pos = np.array(positions).astype(int)
    pos[:, 0] -= pos[:, 0].min()
    pos[:, 1] -= pos[0, 1]
    height = max(p[1] + f.shape[0] for p, f in zip(pos, frames, strict=True))
    width = max(p[0] + f.shape[1] for p, f in zip(pos, frames, strict=True))
    image = np.zeros((height, width))
    for p, f in zip(pos, frames, strict=True):
        image[p[1] : p[1] + f.shape[0], p[0] : p[0] + f.shape[1]] = f
    return image[::-1]


def test_glob_assembles_the_image_l2_poni_calibrates(
    shared_data, module_files, raise_if_dask_computes
):
    with raise_if_dask_computes():
        ds = beamcat.open_dataset(shared_data / LAMBDA / "*.nxs")
    # 1833 x 1556: what Dioptas stitched for L2.poni (PROVENANCE.md), 10 frames, not 30
    assert ds.counts.dims == ("frame", "y", "x")
    assert ds.sizes == {"frame": 10, "y": 1833, "x": 1556}
    assert ds.attrs["module_offsets"] == [[0, 2], [660, 0], [1317, 0]]
    assert [len(m) for m in ds.attrs["modules"]] == [1, 1, 1]
    assert ds.attrs["pixel_size"] == 5.5e-05 and ds.attrs["signal"] == "counts"
    image = ds.counts.isel(frame=4).values
    # every module's raw frame sits unchanged at its offset (integers: exact)
    for name, (y0, x0) in zip(module_files, ds.attrs["module_offsets"], strict=True):
        with h5py.File(name, "r") as f:
            raw = f[DATA][4]
        np.testing.assert_array_equal(image[y0 : y0 + 516, x0 : x0 + 1554], raw)
    gaps = ds.module.values == -1
    assert gaps.sum() == 1833 * 1556 - 3 * 516 * 1554  # no overlap, the rest is gap
    assert (image[gaps] == -1).all()  # the Lambda's own gap value
    # Dioptas' image is the same one flipped vertically, with zeros in the gaps
    expected = _dioptas_image(module_files, 4)
    np.testing.assert_array_equal(np.where(gaps, 0, image)[::-1], expected)


def test_mask_variable_assembled_with_gaps_marked_bad(shared_data):
    ds = open_hdf5(
        shared_data / LAMBDA / "*.nxs",
        variables={"mask": "entry/instrument/detector/pixel_mask"},
    )
    mask = ds["mask"].values
    assert ds["mask"].dims == ("y", "x") and mask.dtype == np.uint32
    assert (mask[ds.module.values == -1] == np.iinfo(np.uint32).max).all()
    with h5py.File(sorted((shared_data / LAMBDA).glob("*_m2_*.nxs"))[0], "r") as f:
        raw = f["entry/instrument/detector/pixel_mask"][0]
    np.testing.assert_array_equal(mask[660 : 660 + 516, 0:1554], raw)


def test_one_module_still_opens_alone(module_files):
    ds = open_hdf5(module_files[1])
    assert ds.sizes == {"frame": 10, "y": 516, "x": 1554} and "module" not in ds.coords


def _module(path, module_id, translation=None, frames=2, shape=(4, 6), value=1):
    with h5py.File(path, "w") as f:
        f[DATA] = np.full((frames, *shape), value, np.int16)
        f["entry/instrument/detector/collection/module_id"] = [module_id.encode()]
        if translation is not None:
            f["entry/instrument/detector/translation/distance"] = np.array(translation, "f4")
            f["entry/instrument/detector/translation/distance"].attrs["units"] = b"pixel"
    return path


def test_parts_of_a_module_are_frames_modules_are_placed(tmp_path):
    _module(tmp_path / "a_m1_part0.nxs", "A", (0, 0, 0), value=1)
    _module(tmp_path / "a_m1_part1.nxs", "A", (0, 0, 0), value=2)
    _module(tmp_path / "a_m2_part0.nxs", "B", (1, 5, 0), value=3)
    _module(tmp_path / "a_m2_part1.nxs", "B", (1, 5, 0), value=4)
    ds = open_hdf5(sorted(tmp_path.glob("*.nxs")))
    assert ds.sizes == {"frame": 4, "y": 9, "x": 7}
    counts = ds.counts.values
    np.testing.assert_array_equal(counts[:, 0, 0], [1, 1, 2, 2])  # module A, parts in order
    np.testing.assert_array_equal(counts[:, 5, 1], [3, 3, 4, 4])  # module B at (y=5, x=1)
    assert counts[0, 4, 0] == -1 and counts[0, 0, 6] == -1  # gaps


def test_modules_without_translations_are_an_error(tmp_path):
    first = _module(tmp_path / "x_m1.nxs", "105F9")
    second = _module(tmp_path / "x_m2.nxs", "104I2")
    with pytest.raises(FormatError, match="2 different detector modules.*105F9") as err:
        open_hdf5([first, second])
    assert "translation" in str(err.value) and "x_m" in str(err.value)


def test_overlapping_modules_are_an_error(tmp_path):
    first = _module(tmp_path / "o_m1.nxs", "A", (0, 0, 0))
    second = _module(tmp_path / "o_m2.nxs", "B", (2, 2, 0))
    with pytest.raises(FormatError, match="overlaps module 0"):
        open_hdf5([first, second])
