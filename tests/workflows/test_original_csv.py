"""The original IMAT scripts' CSV layout (a radiography job output), byte for byte."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from beamcat.errors import OptionError
from beamcat.workflows.original_csv import to_original_csv

TIMES = pd.date_range("2024-12-13T14:01:00", periods=6, freq="62s").to_numpy("datetime64[ns]")
RNG = np.random.default_rng(7)


def _roi_means(n_roi=3, names=("bed_top", "bed_bottom", "std")) -> xr.Dataset:
    mean = RNG.uniform(0.5, 1.0, (n_roi, TIMES.size))
    return xr.Dataset(
        {"mean": (("roi", "time"), mean), "std": (("roi", "time"), mean / 10)},
        coords={"roi": list(names), "time": TIMES, "frame": ("time", np.arange(TIMES.size))},
        attrs={"signal": "mean"},
    )


def _original_csv(greyvalues: list[list[float]], times, roi_titles: list[str]) -> str:
    """03_Image_Processing.py:346-378 re-enacted: DataFrame of grey values, times, renames."""
    df = pd.DataFrame(greyvalues)
    df["Absolute Time"] = times
    df["Elapsed Time"] = [(t - times[0]).total_seconds() for t in times]
    df = df[["Absolute Time", "Elapsed Time", *range(len(roi_titles))]]
    df = df.rename(columns=dict(enumerate(roi_titles)))
    return df.to_csv(index=False)


def _log_times(local: pd.DatetimeIndex) -> list[datetime.datetime]:
    """What dateutil.parser gives the original for the IMAT log's local times."""
    return [t.to_pydatetime() for t in local]


# ------------------------------------------------------------------------ original CSV


def test_roi_csv_is_the_original_layout(tmp_path):
    means = _roi_means()
    out = to_original_csv(means, tmp_path / "run1_greyvalues.csv", standards=["std"])
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "Absolute Time,Elapsed Time,ROI 1,ROI 2,Standard 1"
    assert text.splitlines()[2].startswith("2024-12-13 14:02:02,62.0,")
    values = means["mean"].sel(roi=["bed_top", "bed_bottom", "std"]).values.T.tolist()
    expected = _original_csv(
        values, _log_times(pd.DatetimeIndex(TIMES)), ["ROI 1", "ROI 2", "Standard 1"]
    )
    assert text == expected  # byte for byte, floats in full precision
    back = pd.read_csv(out)
    np.testing.assert_array_equal(back["ROI 2"], means["mean"].sel(roi="bed_bottom"))


def test_grid_csv_columns_local_times_and_origin(tmp_path):
    rows, cols = 2, 3
    mean = RNG.uniform(0.5, 1.0, (rows, cols, TIMES.size))
    times = TIMES - np.timedelta64(180, "D")  # mid June: London is UTC+1
    grid = xr.DataArray(mean, dims=("row", "col", "time"), coords={"time": times}, name="mean")
    standard = xr.DataArray(
        RNG.uniform(0.9, 1.0, (1, TIMES.size)),
        dims=("roi", "time"),
        coords={"roi": ["ref"], "time": times},
    )
    origin = "2024-06-16T14:00:00"  # local (BST) wall clock, like the IMAT log
    out = to_original_csv(
        grid, tmp_path / "grid.csv", standards=standard, timezone="Europe/London", origin=origin
    )
    local = pd.DatetimeIndex(times).tz_localize("UTC").tz_convert("Europe/London")
    values = [[*mean[:, :, i].ravel(), standard.values[0, i]] for i in range(TIMES.size)]
    titles = [f"{r},{c}" for r in range(rows) for c in range(cols)] + ["Standard 1"]
    expected = _original_csv(values, _log_times(local.tz_localize(None)), titles)
    header = 'Absolute Time,Elapsed Time,"0,0","0,1","0,2","1,0","1,1","1,2",Standard 1'
    assert out.read_text().splitlines()[0] == header
    back = pd.read_csv(out)
    assert back["Absolute Time"][0] == str(local[0].tz_localize(None))  # 15:01 local
    # elapsed from 14:00 local = 13:00 UTC; first frame 14:01 UTC -> 3660 s
    np.testing.assert_array_equal(back["Elapsed Time"], 3660.0 + 62.0 * np.arange(TIMES.size))
    assert back.drop(columns="Elapsed Time").to_csv(index=False) == pd.read_csv(
        pd.io.common.StringIO(expected)
    ).drop(columns="Elapsed Time").to_csv(index=False)


def test_csv_names_frames_and_lazy_means(tmp_path, raise_if_dask_computes):
    means = _roi_means().swap_dims({"time": "frame"})  # time along frame, as readers give
    means["mean"] = means["mean"].chunk({"frame": 2})
    out = to_original_csv(means, tmp_path / "named.csv", labels="names")
    header = out.read_text().splitlines()[0]
    assert header == "Absolute Time,Elapsed Time,bed_top,bed_bottom,std"
    back = pd.read_csv(out)
    np.testing.assert_array_equal(back["std"], means["mean"].sel(roi="std").values)


def test_csv_bad_inputs_and_atomic_write(tmp_path, monkeypatch):
    means = _roi_means()
    with pytest.raises(OptionError, match=r"standards=\['nope'\]"):
        to_original_csv(means, tmp_path / "a.csv", standards=["nope"])
    with pytest.raises(OptionError, match="no 1-d 'time' coordinate"):
        to_original_csv(means.drop_vars(["time", "frame"]), tmp_path / "a.csv")
    with pytest.raises(OptionError, match="expected \\(roi, time\\) or \\(row, col, time\\)"):
        to_original_csv(means.expand_dims(z=2), tmp_path / "a.csv")
    with pytest.raises(OptionError, match="no variable 'counts'"):
        to_original_csv(means, tmp_path / "a.csv", var="counts")

    def half_written(self, f, **kwargs):
        f.write("Absolute Time,Elapsed")
        raise OSError("disk full")

    (tmp_path / "keep.csv").write_text("old")
    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(OSError, match="disk full"):
        to_original_csv(means, tmp_path / "keep.csv")
    assert (tmp_path / "keep.csv").read_text() == "old"  # the old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]  # no temp left
