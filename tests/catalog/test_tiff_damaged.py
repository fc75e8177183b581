"""Damaged TIFF tags: a FormatError naming the file at open or compute, never tifffile's own.

Each case is a finding of the fuzzing run of issue 8: one tag of a small
file rewritten in place (the file stays otherwise intact).
"""

import struct

import numpy as np
import pytest
import tifffile

from beamcat.catalog.tiff import open_tiff
from beamcat.errors import FormatError

IMAGE = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)


def _set_tag(path, code: int, value: int, *, long: bool = False):
    """Rewrite tag `code` of page 0 in place (as LONG when `long`, else its own type)."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[code]
        entry, at, kind = tag.offset, tag.valueoffset, int(tag.dtype)
    raw = bytearray(path.read_bytes())
    if long:  # the whole 12-byte entry: code, type LONG, count 1, value
        struct.pack_into("<HHII", raw, entry, code, 4, 1, value)
    else:
        struct.pack_into({3: "<H", 4: "<I"}[kind], raw, at, value)
    path.write_bytes(raw)
    return path


@pytest.fixture
def plain(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", IMAGE)
    return tmp_path / "plain.tif"


@pytest.fixture
def deflated(tmp_path):
    tifffile.imwrite(tmp_path / "deflated.tif", IMAGE, compression="zlib")
    return tmp_path / "deflated.tif"


def test_image_width_zero(plain):
    # tifffile: ZeroDivisionError
    with pytest.raises(FormatError, match=r"plain\.tif: page 0 is \(64, 0\).*non-empty image"):
        open_tiff(_set_tag(plain, 256, 0))


def test_image_width_beyond_the_file_is_refused_before_allocating(plain, deflated):
    # the fuzzing run: MemoryError allocating 3.5 TiB when computed
    with pytest.raises(FormatError, match=r"plain\.tif: page 0 holds 6144 bytes .* needs 2748"):
        open_tiff(_set_tag(plain, 256, 2**31 - 1, long=True))
    with pytest.raises(FormatError, match=r"deflated\.tif: page 0 claims a 2147483647 x 64 image"):
        open_tiff(_set_tag(deflated, 256, 2**31 - 1, long=True))


def test_bits_per_sample_that_strip_byte_counts_contradict(tmp_path):
    # float32 pixels relabelled 16-bit decoded as float16 with half of each row lost
    path = tmp_path / "f32.tif"
    tifffile.imwrite(path, IMAGE.astype(np.float32))
    with pytest.raises(FormatError, match=r"f32\.tif: page 0 holds 12288 bytes .* needs 6144"):
        open_tiff(_set_tag(path, 258, 16))


def test_strips_beyond_the_end_of_the_file(plain):
    plain.write_bytes(plain.read_bytes()[:-1000])
    with pytest.raises(FormatError, match=r"plain\.tif: truncated: page 0's pixels run to byte"):
        open_tiff(plain)


def test_compression_tag_changed_fails_at_compute(plain, deflated):
    # plain pixels said to be deflated: zlib.error when decoded, i.e. when computed
    ds = open_tiff(_set_tag(plain, 259, 8))
    with pytest.raises(FormatError, match=r"plain\.tif: not a readable TIFF file"):
        ds.counts.compute()
    # deflated pixels said to be ZSTD: tifffile's codec import fails; say which package
    ds = open_tiff(_set_tag(deflated, 259, 50000))
    with pytest.raises(FormatError, match=r"deflated\.tif: .*codec.*pip install imagecodecs"):
        ds.counts.compute()


def test_intact_tiled_and_multipage_files_pass_the_checks(tmp_path):
    # the checks compare tags with each other: tiles are padded, pages share them
    stack = np.stack([IMAGE, IMAGE + 1, IMAGE + 2])
    tifffile.imwrite(tmp_path / "tiles.tif", IMAGE, tile=(32, 32))
    tifffile.imwrite(tmp_path / "tilesz.tif", IMAGE, tile=(32, 32), compression="zlib")
    tifffile.imwrite(tmp_path / "pages.tif", stack, photometric="minisblack")
    for name in ("tiles.tif", "tilesz.tif"):
        np.testing.assert_array_equal(open_tiff(tmp_path / name).counts.values[0], IMAGE)
    np.testing.assert_array_equal(open_tiff(tmp_path / "pages.tif").counts.values, stack)
