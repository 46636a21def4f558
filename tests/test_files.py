"""The `file` dataset reads what people have: timestamped CSVs, HDF5 tables, missing cells, graphs by sensor id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from stlib.data import load_dataset, make_batches
from stlib.data.__main__ import main as data_main
from stlib.metrics import MetricSums

IDS = ["400001", "400017", "400030", "400040", "400045"]


def _values(T=150, N=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 500, size=(T, N)).astype(np.float64)


def _frame(T=150, freq="15min", start="2024-03-02 06:30", ids=IDS, seed=0) -> pd.DataFrame:
    """A wide frame: a DatetimeIndex named time, one column per sensor id."""
    df = pd.DataFrame(
        _values(T, len(ids), seed), columns=ids, index=pd.date_range(start, periods=T, freq=freq, name="time")
    )
    return df


def _write_csv(path, df: pd.DataFrame, times=None):
    """df as a CSV with a leading time column (times overrides the index's text)."""
    out = df.reset_index()
    if times is not None:
        out["time"] = times
    out.to_csv(path, index=False)
    return path


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------------------------
# timestamps and sensor ids


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_timestamps_set_start_interval_and_calendar(tmp_path, suffix):
    df = _frame()  # 15-minute steps from Saturday 06:30
    path = tmp_path / f"flow{suffix}"
    _write_csv(path, df) if suffix == ".csv" else df.to_hdf(path, key="df")
    ds = load_dataset("file", path=str(path))
    assert ds.interval_minutes == 15 and ds.start_time == pd.Timestamp("2024-03-02 06:30")
    assert ds.sensor_ids == IDS and ds.sensors == IDS
    np.testing.assert_array_equal(ds.timestamps, df.index)
    assert ds.time_of_day[0] == 26 and ds.day_of_week[0] == 5 and ds.steps_per_day == 96
    np.testing.assert_array_equal(ds.day_of_week, df.index.day_of_week)
    np.testing.assert_array_equal(ds.series[:, :, 0], df.to_numpy())
    feats = ds.features()
    np.testing.assert_allclose(feats[:, 0, 1], ds.time_of_day / 96)


def test_info_names_sensors_interval_and_value(tmp_path, capsys):
    path = _write_csv(tmp_path / "flow.csv", _frame())
    assert (
        data_main(
            ["info", "file", "--opt", f"path={path}", "--opt", "value_name=flow", "--opt", "unit=vehicles/15 min"]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["sensor_ids"] == IDS and info["interval_minutes"] == 15
    assert info["start"] == "2024-03-02 06:30:00" and info["end"] == "2024-03-03 19:45:00"
    assert (info["value_name"], info["unit"]) == ("flow", "vehicles/15 min")


def _stamps(n=150, freq="5min"):
    return [str(t) for t in pd.date_range("2024-01-01", periods=n, freq=freq)]


def _dup(s):
    s[40] = s[39]
    return s


def _gap(s):
    return s[:40] + [str(pd.Timestamp(t) + pd.Timedelta(minutes=10)) for t in s[40:]]


def _irregular(s):
    return s[:40] + [str(pd.Timestamp(t) + pd.Timedelta(minutes=2)) for t in s[40:]]


def _back(s):
    s[40] = s[38]
    return s


def _text(s):
    s[40] = "soon"
    return s


BAD_TIMES = {  # case -> (edit of the timestamp strings, message fragment)
    "duplicate": (_dup, r"data row 41, column 'time': duplicate timestamp 2024-01-01 03:15:00"),
    "gap": (
        _gap,
        r"data row 41, column 'time': gap: 2024-01-01 03:30:00 follows 2024-01-01 03:15:00, "
        r"2 step\(s\) of 0 days 00:05:00 missing",
    ),
    "irregular": (_irregular, r"data row 41, column 'time': irregular interval: .* is 0 days 00:07:00 after"),
    "backwards": (_back, r"data row 41, column 'time': timestamp 2024-01-01 03:10:00 is earlier than the row before"),
    "not_a_time": (_text, r"data row 41, column 'time': 'soon' is not a timestamp"),
    "seven_minutes": (lambda s: _stamps(freq="7min"), r"7 minutes apart|0 days 00:07:00 apart: the interval must be"),
}


@pytest.mark.parametrize("case", list(BAD_TIMES))
def test_bad_timestamps_are_one_error_naming_row_and_column(tmp_path, case):
    edit, fragment = BAD_TIMES[case]
    path = _write_csv(tmp_path / "flow.csv", _frame(freq="5min"), times=edit(_stamps()))
    before = _listing(tmp_path)
    with pytest.raises(ValueError, match=fragment) as e:
        load_dataset("file", path=str(path))
    assert str(path) in str(e.value)
    assert _listing(tmp_path) == before


def test_start_time_and_interval_options_against_timestamps(tmp_path):
    path = _write_csv(tmp_path / "flow.csv", _frame())  # 15 minutes
    agree = load_dataset("file", path=str(path), start_time="2024-03-02 06:30", interval_minutes=15)
    assert agree.interval_minutes == 15
    with pytest.raises(ValueError, match=r"start_time='2024-01-01' contradicts .*flow\.csv, whose first timestamp"):
        load_dataset("file", path=str(path), start_time="2024-01-01")
    with pytest.raises(ValueError, match=r"interval_minutes=30 contradicts .*flow\.csv, whose timestamps are 15 "):
        load_dataset("file", path=str(path), interval_minutes=30)
    no_times = tmp_path / "plain.csv"
    _frame().to_csv(no_times, index=False)  # the options set the calendar
    ds = load_dataset("file", path=str(no_times), interval_minutes=30, start_time="2024-01-01")
    assert ds.interval_minutes == 30 and ds.start_time == pd.Timestamp("2024-01-01") and ds.sensor_ids == IDS


def test_hdf5_errors_name_the_file(tmp_path):
    garbage = tmp_path / "bad.h5"
    garbage.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(ValueError, match=r"bad\.h5: not an HDF5 file"):
        load_dataset("file", path=str(garbage))
    two = tmp_path / "two.h5"
    _frame().to_hdf(two, key="a")
    _frame().to_hdf(two, key="b")
    with pytest.raises(ValueError, match=r"two\.h5: 2 tables \(/a, /b\); expected one"):
        load_dataset("file", path=str(two))
    neg = tmp_path / "neg.h5"
    df = _frame()
    df.iloc[7, 2] = -3
    df.to_hdf(neg, key="df")
    with pytest.raises(
        ValueError, match=r"neg\.h5: step 7 \(2024-03-02 08:15:00\), column '400030': negative value -3"
    ):
        load_dataset("file", path=str(neg))


# ---------------------------------------------------------------------------------------------
# missing values


def test_empty_nan_and_missing_value_cells_are_masked(tmp_path, capsys):
    df = _frame()
    path = tmp_path / "flow.csv"
    text = _write_csv(path, df).read_text().splitlines()
    rows = [line.split(",") for line in text]
    rows[3][2] = ""  # data row 3 (step 2), sensor 400017: empty
    rows[5][3] = "NaN"  # data row 5 (step 4), sensor 400030
    rows[9][1] = "-1"  # data row 9 (step 8), sensor 400001: the missing_value marker
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(
        ValueError, match=r"data row 9 \(2024-03-02 08:30:00\), column '400001': negative value -1 \(1 such cell\)"
    ):
        load_dataset("file", path=str(path))  # without the marker, -1 is a bad value
    ds = load_dataset("file", path=str(path), missing_value=-1)
    assert ds.marked_missing == 3
    assert ds.series[2, 1, 0] == 0 and ds.series[4, 2, 0] == 0 and ds.series[8, 0, 0] == 0
    assert data_main(["info", "file", "--opt", f"path={path}", "--opt", "missing_value=-1"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["marked_missing_cells"] == 3 and info["marked_missing_share"] == round(3 / (150 * 5), 6)
    assert info["missing_cells"] == 3


def test_missing_cells_carry_no_loss_and_no_metric(tmp_path):
    """Missing cells are 0 targets: the mask of the loss and of every metric leaves them out."""
    df = _frame()
    df.iloc[120:, 1] = np.nan  # a sensor dark for the whole test period
    path = _write_csv(tmp_path / "flow.csv", df)
    ds = load_dataset("file", path=str(path))
    assert ds.marked_missing == 30
    sums, wild = MetricSums(ds.out_steps), MetricSums(ds.out_steps)
    for _x, y in make_batches(ds, "test", 64):
        pred = torch.full_like(y, 100.0)
        off = torch.where(y == 0, 1e6, pred)  # a wild forecast exactly where the readings are missing
        sums.update(pred, y)
        wild.update(off, y)
    assert sums.result()["mae"] == wild.result()["mae"]
    assert int(sums.count.sum()) == len(ds.splits["test"]) * ds.out_steps * ds.num_sensors - int(
        (np.stack([ds.target[s + 12 : s + 24] for s in ds.splits["test"]]) == 0).sum()
    )


# ---------------------------------------------------------------------------------------------
# graphs


def _data(tmp_path, ids=IDS):
    return _write_csv(tmp_path / "flow.csv", _frame(ids=ids))


def test_edge_list_by_sensor_id(tmp_path):
    data = _data(tmp_path)
    edges = tmp_path / "distance.csv"
    edges.write_text("from,to,cost\n400017,400001,1.5\n400045,400030,2.25\n")
    ds = load_dataset("file", path=str(data), edges=str(edges))
    assert ds.edges.values.tolist() == [[1, 0, 1.5], [4, 2, 2.25]]
    edges.write_text("from,to,cost\n400017,400001,1.5\n400045,999999,2.25\n400046,400001,1\n")
    with pytest.raises(ValueError) as e:
        load_dataset("file", path=str(data), edges=str(edges))
    msg = str(e.value)
    assert msg.startswith(f"{edges}: data row 2, column 'to': sensor ids not in the id list: [400046, 999999]")
    assert "the data names 5 sensors: [400001, 400017, 400030, 400040, 400045]" in msg


def test_edges_by_knob_decides_ids_against_positions(tmp_path):
    data = _data(tmp_path, ids=["3", "2", "1", "0", "4"])  # ids that look like positions
    edges = tmp_path / "e.csv"
    edges.write_text("from,to\n0,1\n")
    by_id = load_dataset("file", path=str(data), edges=str(edges))  # auto: "0" and "1" are ids
    assert by_id.edges[["from", "to"]].values.tolist() == [[3, 2]]
    by_position = load_dataset("file", path=str(data), edges=str(edges), edges_by="position")
    assert by_position.edges[["from", "to"]].values.tolist() == [[0, 1]]
    named = _data(tmp_path, ids=IDS)
    assert load_dataset("file", path=str(named), edges=str(edges)).edges[["from", "to"]].values.tolist() == [[0, 1]]
    with pytest.raises(ValueError, match=r"e\.csv: data row 1, column 'from': sensor ids not in the id list: \[0, 1\]"):
        load_dataset("file", path=str(named), edges=str(edges), edges_by="id")
    plain = tmp_path / "plain.npy"
    np.save(plain, _values())
    with pytest.raises(ValueError, match=r"e\.csv: edges_by=id, but the data file names no sensors"):
        load_dataset("file", path=str(plain), edges=str(edges), edges_by="id")


def test_edges_by_is_a_validated_config_key(capsys):
    assert data_main(["info", "synthetic", "--opt", "edges_by=name"]) == 2
    assert "data.edges_by must be one of auto, id, position" in capsys.readouterr().err


def test_labelled_matrix_csv_is_matched_by_id(tmp_path):
    data = _data(tmp_path)
    order = [IDS[i] for i in (4, 2, 0, 1, 3)]  # the matrix lists the sensors in another order
    mat = pd.DataFrame(0.0, index=order, columns=order)
    mat.loc["400001", "400017"], mat.loc["400045", "400030"] = 0.5, 0.75
    mat.loc["400040", "400040"] = 1.0  # the diagonal is not an edge
    path = tmp_path / "adj.csv"
    mat.to_csv(path)
    ds = load_dataset("file", path=str(data), edges=str(path))
    assert sorted(ds.edges.values.tolist()) == [[0, 1, 0.5], [4, 2, 0.75]]
    mat.drop(index="400040", columns="400040").to_csv(path)
    with pytest.raises(ValueError, match=r"adj\.csv: no row and column for 1 sensor ids of the data: \[400040\]"):
        load_dataset("file", path=str(data), edges=str(path))


def test_dense_npy_matrix_by_position(tmp_path):
    data = _data(tmp_path)
    adj = np.zeros((5, 5))
    adj[0, 3] = 2.0
    np.save(tmp_path / "adj.npy", adj)
    assert load_dataset("file", path=str(data), edges=str(tmp_path / "adj.npy")).edges.values.tolist() == [[0, 3, 2.0]]
