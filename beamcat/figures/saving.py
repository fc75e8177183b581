"""Writing figures: one figure in several formats, and image sequences with an animation.

Every file is written atomically (complete under its name, or absent).
`save_frames` redraws one figure per frame; given the artists that change, it
draws the rest once and blits only those (see its notes), which is what makes
long image sequences fast.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from matplotlib.animation import FFMpegWriter, PillowWriter
from matplotlib.figure import Figure

from beamcat._util import atomic_path
from beamcat.errors import OptionError

__all__ = ["FORMATS", "save_figure", "save_frames"]

#: file formats `save_figure` writes
FORMATS = ("png", "pdf", "svg")


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    formats = tuple(
        f.lower().lstrip(".") for f in ([formats] if isinstance(formats, str) else formats)
    )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise OptionError(f"formats={formats!r}: expected one or more of {', '.join(FORMATS)}")
    return formats


def _stem(path: str | os.PathLike) -> Path:
    """`path` without a figure-format suffix (``a/b.png`` -> ``a/b``; ``run.0042`` kept)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower().lstrip(".") in FORMATS else path


def save_figure(
    fig: Figure,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
    dpi: float = 300,
    tight: bool = True,
) -> list[Path]:
    """Write `fig` once per format, atomically.

    Parameters
    ----------
    fig : Figure
    path : path
        File name; its format suffix, if any, is replaced by each of `formats`.
    formats : sequence of {"png", "pdf", "svg"}
    dpi : float
        Resolution of raster output (and of images embedded in PDF/SVG).
    tight : bool
        Crop the saved figure to its content (``bbox_inches="tight"``).

    Returns
    -------
    list of Path
        The files written, in the order of `formats`.

    Examples
    --------
    >>> save_figure(fig, "out/double_plot", formats=("png", "pdf"))  # doctest: +SKIP
    [PosixPath('out/double_plot.png'), PosixPath('out/double_plot.pdf')]
    """
    stem = _stem(path)
    written = []
    for fmt in _check_formats(formats):
        target = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)
        written.append(target)
    return written


@contextlib.contextmanager
def _atomic_named(path: Path) -> Iterator[Path]:
    """Like `atomic_path`, but the temporary file keeps `path`'s name (in a hidden folder).

    Animation writers (Pillow, ffmpeg) pick the file format from the name's suffix.
    """
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        tmp = Path(folder) / path.name
        yield tmp
        os.replace(tmp, path)


def save_frames(
    fig: Figure,
    update: Callable[[int], None],
    count: int,
    folder: str | os.PathLike,
    *,
    name: str,
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    animation: Literal["gif", "mp4"] | None = "gif",
    fps: float = 4.0,
    animation_dpi: float = 80,
    progress: bool = False,
) -> dict[str, list[Path]]:
    """Write an image sequence (``folder/name/name_NNNN.<fmt>``) and an animation of one figure.

    The same figure is redrawn for every frame (`update` changes its artists in
    place), which is much faster than building a figure per frame; each frame
    file and the animation are written atomically.

    Parameters
    ----------
    fig : Figure
    update : callable ``update(i)``
        Puts frame ``i`` (``0 <= i < count``) into `fig`.
    count : int
        Number of frames.
    folder : path
        Where the frames' subfolder `name` and the animation ``name.gif`` go.
    name : str
        Subfolder, file prefix and animation name.
    formats : sequence of {"png", "pdf", "svg"}
        Formats of the frame files.
    dpi : float
        Resolution of the frame files.
    animation : {"gif", "mp4"} or None
        GIF through Pillow (matplotlib's `PillowWriter`, which keeps the frames
        in memory until the end: keep `animation_dpi` modest for long runs), MP4
        through ffmpeg (streamed; ffmpeg must be on PATH), or none.
    fps : float
        Frames per second of the animation.
    animation_dpi : float
        Resolution of the animation frames.
    progress : bool
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    dict
        ``{"frames": [paths], "animation": [path]}`` (the latter empty without animation).

    Raises
    ------
    OptionError
        Unknown format or animation, or ``"mp4"`` without ffmpeg.
    """
    formats = _check_formats(formats)
    if animation not in ("gif", "mp4", None):
        raise OptionError(f"animation={animation!r}: expected 'gif', 'mp4' or None")
    if animation == "mp4" and not FFMpegWriter.isAvailable():
        raise OptionError("animation='mp4' needs ffmpeg on PATH; install it or use 'gif'")
    # lay the figure out once: only colours and texts change from frame to frame
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    frames_dir = Path(folder) / name
    frames_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"frames": [], "animation": []}
    target = Path(folder) / f"{name}.{animation}"
    with contextlib.ExitStack() as stack:
        writer = None
        if animation is not None:
            tmp = stack.enter_context(_atomic_named(target))
            writer = PillowWriter(fps=fps) if animation == "gif" else FFMpegWriter(fps=fps)
            stack.enter_context(writer.saving(fig, tmp, animation_dpi))
        steps = range(count)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc=name, unit="frame")
        for i in steps:
            update(i)
            for fmt in formats:
                # no tight crop: every frame keeps the same size and framing
                written["frames"] += save_figure(
                    fig, frames_dir / f"{name}_{i:04d}", formats=(fmt,), dpi=dpi, tight=False
                )
            if writer is not None:
                writer.grab_frame()
    if animation is not None:
        written["animation"].append(target)
    return written
