"""METR-LA and PEMS-BAY in DCRNN's layout, and the restricted unpickler for adj_mx.pkl.

The tests write small files in exactly DCRNN's formats: a pandas HDF5 table (key 'df', DatetimeIndex,
a column per sensor id, 0 = missing), adj_mx.pkl ([ids, {id: index}, float32 (N, N)], as Python 2
wrote it, and as Python 3 does) and the distances CSV (from, to, cost by sensor id).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct

import numpy as np
import pandas as pd
import pytest

from stlib.data import load_dataset, sources
from stlib.data.__main__ import main as data_main
from stlib.data.graphs import read_adj_pickle

LA_IDS = ["773869", "767541", "767542", "717447", "717446", "717445"]


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    """The tests' files are small: the public files' shapes are checked in one test only."""
    monkeypatch.setattr(sources, "DCRNN_SHAPES", {})


def _table(T=300, ids=LA_IDS, start="2012-03-01", seed=0, drop=None) -> pd.DataFrame:
    """Speeds in mph, some readings 0 (missing), 5-minute DatetimeIndex (rows `drop` removed)."""
    rng = np.random.default_rng(seed)
    speed = np.round(rng.uniform(20, 70, size=(T, len(ids))), 3)
    speed[rng.random(speed.shape) < 0.02] = 0.0
    df = pd.DataFrame(speed, index=pd.date_range(start, periods=T, freq="5min"), columns=ids)
    return df.drop(df.index[drop]) if drop is not None else df


def _adj(n: int | None = None) -> np.ndarray:
    n = len(LA_IDS) if n is None else n
    adj = np.eye(n, dtype=np.float32)
    adj[0, 1], adj[1, 0], adj[2, 4] = 0.8, 0.6, 0.3  # with a non-ASCII byte or two in the float32 bytes
    return adj


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 str opcodes, as DCRNN's Python 2 pickles hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        head = (
            pickle.SHORT_BINSTRING + bytes([len(raw)])
            if len(raw) < 256
            else pickle.BINSTRING + struct.pack("<i", len(raw))
        )
        self.write(head + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def _pickle_bytes(obj, style: str) -> bytes:
    if style == "python2":
        buf = io.BytesIO()
        Py2Pickler(buf, protocol=2).dump(obj)
        return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # numpy 1's name
    return pickle.dumps(obj, protocol={"protocol2": 2, "protocol5": 5}[style])


def _write_pickle(path, ids=LA_IDS, adj=None, style="python2"):
    adj = _adj(len(ids)) if adj is None else adj
    path.write_bytes(_pickle_bytes([list(ids), {s: i for i, s in enumerate(ids)}, adj], style))
    return path


def _metr_la(root, T=300, graph="adj_mx.pkl", **kw) -> pd.DataFrame:
    folder = root / "METR-LA"
    folder.mkdir(parents=True, exist_ok=True)
    df = _table(T, **kw)
    df.to_hdf(folder / "metr-la.h5", key="df")
    if graph == "adj_mx.pkl":
        _write_pickle(folder / graph, list(df.columns))
    return df


# ---------------------------------------------------------------------------------------------
# adj_mx.pkl


@pytest.mark.parametrize("style", ["python2", "protocol2", "protocol5"])
def test_adj_pickle_loads_in_every_style(tmp_path, style):
    path = _write_pickle(tmp_path / "adj_mx.pkl", style=style)
    ids, mat = read_adj_pickle(path)
    assert ids == LA_IDS
    np.testing.assert_array_equal(mat, _adj())


def test_python2_pickle_needs_latin1():
    raw = _pickle_bytes([LA_IDS, {}, _adj()], "python2")
    with pytest.raises(UnicodeDecodeError):  # what a plain Python 3 load does with DCRNN's files
        pickle.loads(raw)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_adj_pickle_refuses_other_globals(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(pickle.dumps([LA_IDS, _Exploit(marker), _adj()], protocol=2))
    with pytest.raises(ValueError) as e:
        read_adj_pickle(path)
    assert str(e.value).startswith(f"{path}: refused to unpickle global '{os.system.__module__}.system'")
    assert not marker.exists()
    path.write_bytes(pickle.dumps([LA_IDS, {}, pd.Timestamp("2020-01-01")], protocol=2))
    with pytest.raises(ValueError, match=r"refused to unpickle global 'pandas\._libs"):
        read_adj_pickle(path)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"garbage", r"not a readable pickle \(corrupt or truncated\?\)"),
        (pickle.dumps({"a": 1}, protocol=2), r"expected DCRNN's adjacency pickle .* got a dict"),
        (pickle.dumps([LA_IDS, {}, np.eye(3)], protocol=2), r"must be a numeric \(6, 6\) array for 6 sensor ids"),
        (
            pickle.dumps([LA_IDS, {LA_IDS[0]: 3}, _adj()], protocol=2),
            r"dict disagrees with the id list at sensor '773869'",
        ),
    ],
)
def test_adj_pickle_bad_content(tmp_path, content, fragment):
    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=fragment) as e:
        read_adj_pickle(path)
    assert str(path) in str(e.value)


# ---------------------------------------------------------------------------------------------
# METR-LA / PEMS-BAY


def test_metr_la_loads_speed_ids_calendar_and_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    df = _metr_la(tmp_path)
    ds = load_dataset("metr-la")
    assert ds.name == "METR-LA" and (ds.value_name, ds.unit) == ("speed", "mph")
    assert ds.sensor_ids == LA_IDS and ds.interval_minutes == 5
    assert ds.start_time == pd.Timestamp("2012-03-01") and ds.day_of_week[0] == 3  # a Thursday
    np.testing.assert_array_equal(ds.series[:, :, 0], df.to_numpy(np.float32))
    assert sorted(ds.edges.values.tolist()) == sorted(
        [[0, 1, np.float32(0.8)], [1, 0, np.float32(0.6)], [2, 4, np.float32(0.3)]]
    )
    assert ds.summary()["missing_cells"] == int((df.to_numpy() == 0).sum()) > 0


@pytest.mark.parametrize(
    "T, sizes", [(34272, (23974, 3425, 6850)), (52116, (36465, 5209, 10419)), (300, (194, 28, 55))]
)
def test_dcrnn_712_split(T, sizes):
    splits = sources.dcrnn_splits(T, 24)
    assert tuple(len(splits[k]) for k in ("train", "val", "test")) == sizes
    np.testing.assert_array_equal(np.concatenate(list(splits.values())), np.arange(T - 23))


def test_metr_la_uses_dcrnn_split_unless_split_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _metr_la(tmp_path)
    assert {k: len(v) for k, v in load_dataset("METR-LA").splits.items()} == {"train": 194, "val": 28, "test": 55}
    custom = load_dataset("METR-LA", split=[0.5, 0.25, 0.25])
    assert {k: len(v) for k, v in custom.splits.items()} == {"train": 138, "val": 69, "test": 70}


def test_pems_bay_distances_csv_gaps_and_info(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    ids = ["400001", "400017", "400030", "400040"]
    folder = tmp_path / "PEMS-BAY"
    folder.mkdir()
    df = _table(360, ids=ids, start="2017-03-11 00:00", drop=slice(288 + 24, 288 + 36))  # the DST hour, 02:00
    df.to_hdf(folder / "pems-bay.h5", key="df")
    (folder / "distances_bay_2017.csv").write_text(
        "from,to,cost\n400001,400017,1009.4\n400030,400040,372.0\n400001,499999,88.0\n"
    )  # 499999: another sensor
    ds = load_dataset("PEMS-BAY")
    assert ds.edges.values.tolist() == [[0, 1, 1009.4], [2, 3, 372.0]]
    assert ds.num_steps == 348 and ds.time_gaps == 1
    np.testing.assert_array_equal(ds.timestamps, df.index)  # the real timestamps, across the gap
    assert ds.time_of_day[311] == 35 - 12 and ds.time_of_day[312] == 36  # 01:55, then 03:00 on the 12th
    assert data_main(["info", "PEMS-BAY"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["time_gaps"] == 1 and info["value_name"] == "speed" and info["unit"] == "mph"
    assert info["windows"] == {k: len(v) for k, v in sources.dcrnn_splits(348, 24).items()}


def test_file_dataset_refuses_gaps_a_named_one_accepts(tmp_path):
    path = tmp_path / "x.h5"
    _table(312, drop=slice(100, 112)).to_hdf(path, key="df")
    with pytest.raises(ValueError, match=r"x\.h5: step 100, column 'index': gap: "):
        load_dataset("file", path=str(path))


@pytest.mark.parametrize("missing", ["metr-la.h5", "adj_mx.pkl"])
def test_missing_files_say_where_they_come_from(tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _metr_la(tmp_path)
    (tmp_path / "METR-LA" / missing).unlink()
    assert data_main(["info", "METR-LA"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "METR-LA" / missing) in err and f"data directory searched: {tmp_path}" in err
    assert "github.com/liyaguang/DCRNN" in err
    assert data_main(["download", "METR-LA"]) == 2
    assert "does not download here" in capsys.readouterr().err


def test_metr_la_graph_from_distances_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _metr_la(tmp_path, graph="distances_la_2012.csv")
    (tmp_path / "METR-LA" / "distances_la_2012.csv").write_text(
        "from,to,cost\n773869,767541,2.5\n717445,773869,1.0\n111111,773869,4.0\n"
    )
    ds = load_dataset("METR-LA")
    assert ds.edges.values.tolist() == [[0, 1, 2.5], [5, 0, 1.0]]  # the distances CSV's edges


def test_a_file_of_another_shape_than_the_public_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _metr_la(tmp_path)
    monkeypatch.setattr(sources, "DCRNN_SHAPES", {"METR-LA": (34272, 207)})
    with pytest.raises(
        ValueError,
        match=r"metr-la.h5: 300 time steps x 6 sensors, but the public METR-LA file holds "
        r"34272 x 207: a different or truncated file \(get it from the DCRNN",
    ):
        load_dataset("metr-la")
    monkeypatch.setattr(sources, "DCRNN_SHAPES", {"METR-LA": (300, 6)})
    assert load_dataset("metr-la").series.shape[:2] == (300, 6)
