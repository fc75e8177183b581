"""Time conversion shared by every reader: naive local times -> UTC."""

import numpy as np

from beamcat._util import provenance, to_utc


def test_naive_times_are_local_times_of_the_timezone():
    winter = to_utc(["2024-12-13 11:46:49"], "Europe/London")
    summer = to_utc(["2024-07-13 11:46:49"], "Europe/London")
    assert winter[0] == np.datetime64("2024-12-13T11:46:49")  # GMT == UTC
    assert summer[0] == np.datetime64("2024-07-13T10:46:49")  # BST = UTC+1
    assert to_utc(["2024-07-13 11:46:49"])[0] == np.datetime64("2024-07-13T11:46:49")
    assert winter.dtype == np.dtype("datetime64[ns]")


def test_aware_times_are_converted_and_repeated_hour_is_resolved():
    aware = to_utc(["2024-07-13T11:46:49+02:00"], "Europe/London")
    assert aware[0] == np.datetime64("2024-07-13T09:46:49")
    # 01:30 happens twice on 27 Oct 2024 in London: a monotonic log resolves it by order
    times = to_utc(
        ["2024-10-27 00:59", "2024-10-27 01:30", "2024-10-27 01:30", "2024-10-27 02:10"],
        "Europe/London",
    )
    assert np.all(np.diff(times) > np.timedelta64(0))
    assert not np.isnat(to_utc(["2024-10-27 01:30"], "Europe/London")).any()


def test_provenance_lists_every_source():
    assert provenance(["a.tif", "b.tif"], "tiff") == {"source": "a.tif;b.tif", "format": "tiff"}
