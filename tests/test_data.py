"""Tests for the data layer: loaders, validation, the pems08-tail protocol, downloads and batches."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stlib import config
from stlib.data import load_dataset, make_batches, sources
from stlib.data.__main__ import main as data_main
from stlib.data.batches import epoch_order
from stlib.data.core import chronological_splits

SHARED_DATA = Path(os.environ.get("STLIB_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
TAIL_NPZ = SHARED_DATA / "pems08_tail" / "PEMS08_flow_tail.npz"
needs_tail = pytest.mark.skipif(
    not TAIL_NPZ.exists(),
    reason=f"real pems08_tail data not found at {TAIL_NPZ} (set STLIB_DATA_DIR to the folder holding pems08_tail/)",
)


# ---------------------------------------------------------------------------------------------
# helpers


def _series(T=200, N=5, C=None, seed=0) -> np.ndarray:
    """Whole-number flows (T, N) or (T, N, C), exactly representable in float32."""
    shape = (T, N) if C is None else (T, N, C)
    return np.random.default_rng(seed).integers(1, 500, size=shape).astype(np.float64)


def _edges_csv(path: Path, rows=((0, 1, 1.5), (1, 2, 2.0), (3, 4, 0.5)), header="from,to,cost") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _fake_pems(root: Path, name: str, T: int, N=3, C=3) -> np.ndarray:
    """<root>/<name>/<name>.npz (key data) + distance.csv, as the public files are laid out."""
    folder = root / name
    folder.mkdir(parents=True)
    arr = _series(T, N, C)
    np.savez(folder / f"{name}.npz", data=arr)
    _edges_csv(folder / "distance.csv", rows=((0, 1, 1.0), (1, 2, 2.0)))
    return arr


@pytest.fixture(scope="module")
def small():
    """A small synthetic dataset for the batch tests (5 sensors, 2 days)."""
    return load_dataset("synthetic", num_sensors=5, num_days=2, seed=1)


# ---------------------------------------------------------------------------------------------
# load_dataset and synthetic


def test_load_dataset_returns_series_calendar_edges_and_splits():
    ds = load_dataset("synthetic", num_sensors=6, num_days=3, seed=0)
    assert ds.series.shape == (3 * 288, 6, 1)
    assert isinstance(ds.start_time, pd.Timestamp)
    assert list(ds.edges.columns) == ["from", "to", "cost"]
    assert ds.edges[["from", "to"]].to_numpy().max() < 6 and len(ds.edges) > 0
    assert set(ds.splits) == {"train", "val", "test"}
    starts = np.concatenate([ds.splits["train"], ds.splits["val"], ds.splits["test"]])
    np.testing.assert_array_equal(starts, np.arange(ds.num_steps - 24 + 1))  # chronological, all windows
    assert len(ds.splits["train"]) == int(len(starts) * 0.6)


def test_synthetic_same_seed_identical_other_seed_differs():
    a = load_dataset("synthetic", num_sensors=5, num_days=2, seed=7)
    b = load_dataset("synthetic", num_sensors=5, num_days=2, seed=7)
    c = load_dataset("synthetic", num_sensors=5, num_days=2, seed=8)
    np.testing.assert_array_equal(a.series, b.series)
    pd.testing.assert_frame_equal(a.edges, b.edges)
    assert not np.array_equal(a.series, c.series)
    assert load_dataset("synthetic", num_sensors=9, num_days=4).series.shape == (4 * 288, 9, 1)


def test_unknown_dataset_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope' \(known: synthetic, pems08-tail"):
        load_dataset("nope")


# ---------------------------------------------------------------------------------------------
# python -m stlib.data info


def test_info_prints_json_summary(capsys):
    rc = data_main(["info", "synthetic", "--opt", "num_sensors=6", "--opt", "num_days=3"])
    out = capsys.readouterr().out
    assert rc == 0
    info = json.loads(out)
    ds = load_dataset("synthetic", num_sensors=6, num_days=3)
    assert info["shape"] == [864, 6, 1]
    assert info["start"] == str(ds.start_time) and info["end"] == str(ds.timestamps[-1])
    assert info["windows"] == {k: len(v) for k, v in ds.splits.items()}
    assert info["missing_share"] == pytest.approx(float((ds.target == 0).mean()), abs=1e-6)
    assert info["train_mean"] == pytest.approx(ds.mean, abs=1e-4)
    assert info["train_std"] == pytest.approx(ds.std, abs=1e-4)


def test_info_bad_name_exits_with_error(capsys):
    rc = data_main(["info", "no-such-data"])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    assert "unknown dataset 'no-such-data'" in cap.err


def test_info_missing_pems_file_exits_with_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    assert data_main(["info", "PEMS08"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "PEMS08" / "PEMS08.npz") in err and "python -m stlib.data download PEMS08" in err


def test_info_bad_option_exits_with_error(capsys):
    assert data_main(["info", "synthetic", "--opt", "num_sensorz=5"]) == 2
    assert "num_sensors" in capsys.readouterr().err  # the suggestion


# ---------------------------------------------------------------------------------------------
# real PeMS files


@pytest.mark.parametrize("name", config.PEMS_NAMES)
def test_pems_standard_622_split(tmp_path, monkeypatch, name):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    arr = _fake_pems(tmp_path, name, T=17856, N=3, C=3)
    ds = load_dataset(name.lower())
    np.testing.assert_array_equal(ds.series, arr)
    assert ds.start_time == pd.Timestamp(sources.PEMS_START[name])
    assert len(ds.splits["train"]) == 10699 and ds.splits["train"][0] == 0
    assert ds.splits["val"][0] == 10699 and len(ds.splits["val"]) == 3567
    assert ds.splits["test"][0] == 14266 and len(ds.splits["test"]) == 3567
    assert ds.splits["test"][-1] == 17856 - 24
    assert len(ds.edges) == 2


def test_pems_real_sensor_ids_are_mapped(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _fake_pems(tmp_path, "PEMS03", T=300, N=3)
    (tmp_path / "PEMS03" / "PEMS03.txt").write_text("317842\n318118\n313344\n")
    _edges_csv(tmp_path / "PEMS03" / "distance.csv", rows=((317842, 313344, 1.5),))
    ds = load_dataset("PEMS03")
    assert ds.edges[["from", "to"]].values.tolist() == [[0, 2]]
    _edges_csv(tmp_path / "PEMS03" / "distance.csv", rows=((317842, 999, 1.5),))
    with pytest.raises(
        ValueError, match=r"distance\.csv: data row 1, column 'to': sensor ids not in the id list: \[999\]"
    ):
        load_dataset("PEMS03")


@pytest.mark.parametrize("missing", ["PEMS08.npz", "distance.csv"])
def test_pems_missing_file_names_file_dir_and_command(tmp_path, monkeypatch, missing):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    _fake_pems(tmp_path, "PEMS08", T=300)
    (tmp_path / "PEMS08" / missing).unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("PEMS08")
    msg = str(e.value)
    assert str(tmp_path / "PEMS08" / missing) in msg
    assert f"data directory searched: {tmp_path}" in msg
    assert "python -m stlib.data download PEMS08" in msg


def test_pems_without_public_checksum_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"missing file .*PEMS07\.npz.*place the file there by hand"):
        load_dataset("PEMS07")


# ---------------------------------------------------------------------------------------------
# download


def test_git_blob_id_known_values_and_git_hash_object(tmp_path):
    empty, hello, sample = tmp_path / "empty", tmp_path / "hello", tmp_path / "sample.bin"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    sample.write_bytes(np.random.default_rng(0).bytes(3_000_000))  # > one 1 MiB read chunk
    assert sources.git_blob_id(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert sources.git_blob_id(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"
    data = sample.read_bytes()
    assert sources.git_blob_id(sample) == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot compare with `git hash-object`")
    out = subprocess.run(["git", "hash-object", str(sample)], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert sources.git_blob_id(sample) == out.stdout.strip()


def test_fetch_saves_file_when_blob_id_matches(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"some bytes\n" * 1000)
    dest = tmp_path / "out" / "deep" / "file.bin"
    got = sources.fetch(src.as_uri(), dest, sources.git_blob_id(src))
    assert got == dest and dest.read_bytes() == src.read_bytes()
    assert _listing(tmp_path / "out") == ["deep", "deep/file.bin"]  # no temp files left


def test_fetch_wrong_blob_id_raises_and_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"some bytes\n" * 1000)
    with pytest.raises(ValueError, match=r"git blob id [0-9a-f]{40}, expected 0{40}; not saved to .*file\.bin"):
        sources.fetch(src.as_uri(), tmp_path / "out" / "deep" / "file.bin", "0" * 40)
    assert _listing(tmp_path) == ["src.bin"]  # neither the file, nor a .part file, nor the new folders
    (tmp_path / "keep").mkdir()
    with pytest.raises(ValueError):
        sources.fetch(src.as_uri(), tmp_path / "keep" / "file.bin", "0" * 40)
    assert _listing(tmp_path / "keep") == []


def test_fetch_unreachable_url_raises_and_leaves_nothing(tmp_path):
    url = (tmp_path / "absent.bin").as_uri()
    with pytest.raises(OSError, match=r"absent\.bin: download failed .*nothing saved to"):
        sources.fetch(url, tmp_path / "out" / "file.bin")
    assert _listing(tmp_path) == []


def test_download_verifies_and_cleans_up(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    _fake_pems(src, "PEMS08", T=100, N=3)
    npz_url, dist_url = (src / "PEMS08" / "PEMS08.npz").as_uri(), (src / "PEMS08" / "distance.csv").as_uri()
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="expected f5f3e84a00417573aa8487fe1e9e8cd13c6026c8"):  # the real id
        sources.download("PEMS08", root=root, url=npz_url, dist_url=dist_url)
    assert not root.exists()
    monkeypatch.setitem(sources.PEMS_BLOB, "PEMS08", sources.git_blob_id(src / "PEMS08" / "PEMS08.npz"))
    folder = sources.download("PEMS08", root=root, url=npz_url, dist_url=dist_url)
    assert _listing(folder) == ["PEMS08.npz", "distance.csv"]
    assert "downloaded and verified" in capsys.readouterr().out
    sources.download("PEMS08", root=root, url="file:///nowhere", dist_url=dist_url)  # present: no download
    assert "already present and verified" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"no verified public source known for 'PEMS07'"):
        sources.download("PEMS07", root=root)


# ---------------------------------------------------------------------------------------------
# pems08-tail


@pytest.fixture(scope="module")
def tail_data():
    with np.load(TAIL_NPZ) as z:
        return z["data"]


@pytest.mark.pems08
@needs_tail
def test_pems08_tail_protocol(monkeypatch, tail_data):
    monkeypatch.setenv("STLIB_DATA_DIR", str(SHARED_DATA))
    ds = load_dataset("pems08-tail")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 2834, "val": 709, "test": 3567}
    np.testing.assert_array_equal(ds.splits["train"], np.arange(0, 2834))
    np.testing.assert_array_equal(ds.splits["val"], np.arange(2834, 3543))
    np.testing.assert_array_equal(ds.splits["test"], np.arange(3566, 7133))
    assert ds.splits["test"][0] == 3566
    assert ds.series.shape == (7156, 170, 1)
    np.testing.assert_array_equal(ds.series, tail_data)
    assert ds.train_rows == slice(0, 2857)
    assert ds.mean == pytest.approx(231.35, abs=0.01) and ds.std == pytest.approx(146.06, abs=0.01)
    assert ds.start_time == pd.Timestamp("2016-08-07 03:40")
    assert ds.time_of_day[0] == 44 and ds.time_of_day[1] == 45
    np.testing.assert_array_equal(ds.time_of_day, (10700 + np.arange(7156)) % 288)
    assert ds.day_of_week[0] == 6  # 2016-08-07 was a Sunday
    np.testing.assert_array_equal(ds.day_of_week, ds.timestamps.day_of_week)
    assert len(ds.edges) == 295 and ds.edges[["from", "to"]].to_numpy().max() == 169


@pytest.mark.pems08
@needs_tail
@pytest.mark.parametrize("days,windows", [(3, 841), (6, 1705), (9, 2569)])
def test_pems08_tail_training_span(monkeypatch, days, windows):
    monkeypatch.setenv("STLIB_DATA_DIR", str(SHARED_DATA))
    ds = load_dataset("pems08-tail", train_days=days)  # the learning curve's spans: the last D days of training rows
    first = 2857 - 288 * days
    np.testing.assert_array_equal(ds.splits["train"], np.arange(first, 2834))
    assert len(ds.splits["train"]) == windows and ds.train_rows == slice(first, 2857)
    np.testing.assert_array_equal(ds.splits["val"], np.arange(2834, 3543))
    np.testing.assert_array_equal(ds.splits["test"], np.arange(3566, 7133))
    assert ds.mean == pytest.approx(ds.target[first:2857].mean(dtype=np.float64), rel=1e-12)


@pytest.mark.pems08
@needs_tail
def test_pems08_tail_info_cli(monkeypatch, capsys):
    monkeypatch.setenv("STLIB_DATA_DIR", str(SHARED_DATA))
    assert data_main(["info", "pems08-tail"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["windows"] == {"train": 2834, "val": 709, "test": 3567}
    assert info["first_window"] == {"train": 0, "val": 2834, "test": 3566}
    assert info["train_rows"] == [0, 2856] and info["start"] == "2016-08-07 03:40:00"


@pytest.mark.pems08
@needs_tail
def test_pems08_tail_derived_from_full_file(tmp_path, monkeypatch, tail_data):
    full = np.random.default_rng(0).integers(0, 900, size=(17856, 170, 3)).astype(np.float32)
    full[10700:, :, 0] = tail_data[:, :, 0]
    (tmp_path / "PEMS08").mkdir()
    np.savez(tmp_path / "PEMS08" / "PEMS08.npz", data=full)
    shutil.copy(SHARED_DATA / "pems08_tail" / "distance.csv", tmp_path / "PEMS08" / "distance.csv")
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    derived = load_dataset("pems08-tail")
    assert "PEMS08.npz rows 10700.. channel 0" in derived.source
    np.testing.assert_array_equal(derived.series, tail_data)
    assert derived.start_time == pd.Timestamp("2016-08-07 03:40")
    assert derived.splits["test"][0] == 3566 and len(derived.edges) == 295


def test_pems08_tail_missing_files_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("pems08-tail")
    msg = str(e.value)
    assert str(tmp_path / "pems08_tail" / "PEMS08_flow_tail.npz") in msg
    assert str(tmp_path / "PEMS08" / "PEMS08.npz") in msg
    assert f"data directory searched: {tmp_path}" in msg and "python -m stlib.data download PEMS08" in msg


def test_pems08_tail_wrong_shape_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(tmp_path))
    (tmp_path / "pems08_tail").mkdir()
    np.savez(tmp_path / "pems08_tail" / "PEMS08_flow_tail.npz", data=_series(7000, 170, 1))
    with pytest.raises(
        ValueError, match=r"PEMS08_flow_tail\.npz: pems08-tail expects shape \(7156, 170, 1\), got \(7000"
    ):
        load_dataset("pems08-tail")


# ---------------------------------------------------------------------------------------------
# the "file" loader


@pytest.mark.parametrize("C", [None, 2])
@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_file_numpy_2d_and_3d(tmp_path, suffix, C):
    arr = _series(200, 5, C)
    path = tmp_path / f"mine{suffix}"
    np.savez(path, data=arr) if suffix == ".npz" else np.save(path, arr)
    ds = load_dataset("file", path=str(path))
    assert ds.series.shape == (200, 5, C or 1) and ds.name == "mine"
    np.testing.assert_array_equal(ds.series, arr if C else arr[:, :, None])
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 106, "val": 35, "test": 36}  # 177 windows
    assert len(ds.edges) == 0 and list(ds.edges.columns) == ["from", "to", "cost"]


@pytest.mark.parametrize("layout", ["header", "time_column", "pandas_index", "no_header"])
def test_file_csv_matrix(tmp_path, layout):
    arr = _series(120, 4)
    ts = pd.date_range("2024-03-01", periods=120, freq="5min")
    path = tmp_path / "m.csv"
    df = pd.DataFrame(arr, columns=[f"s{i}" for i in range(4)])
    if layout == "header":
        df.to_csv(path, index=False)
    elif layout == "time_column":
        df.insert(0, "time", ts)
        df.to_csv(path, index=False)
    elif layout == "pandas_index":
        df.index = ts
        df.to_csv(path)
    else:
        np.savetxt(path, arr, delimiter=",")
    ds = load_dataset("file", path=str(path))
    np.testing.assert_array_equal(ds.series[:, :, 0], arr)


def test_file_edge_list_and_adjacency(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, _series(200, 5))
    ds = load_dataset("file", path=str(data), edges=str(_edges_csv(tmp_path / "e.csv")))
    assert ds.edges.values.tolist() == [[0, 1, 1.5], [1, 2, 2.0], [3, 4, 0.5]]
    ds = load_dataset("file", path=str(data), edges=str(_edges_csv(tmp_path / "e2.csv", ((0, 1), (2, 3)), "from,to")))
    assert ds.edges.values.tolist() == [[0, 1, 1.0], [2, 3, 1.0]]  # cost defaults to 1
    loops = _edges_csv(tmp_path / "e3.csv", ((0, 1, 1.0), (2, 2, 5.0), (3, 4, 0.5)))
    ds = load_dataset("file", path=str(data), edges=str(loops))
    assert ds.edges.values.tolist() == [[0, 1, 1.0], [3, 4, 0.5]]  # a self-loop is dropped, as a matrix's diagonal
    adj = np.zeros((5, 5))
    adj[0, 1], adj[4, 2], adj[3, 3] = 2.5, 1.0, 9.0  # the diagonal is not an edge
    for name in ("a.npy", "a.csv", "a.npz"):
        p = tmp_path / name
        if p.suffix == ".npy":
            np.save(p, adj)
        elif p.suffix == ".csv":
            np.savetxt(p, adj, delimiter=",")
        else:
            np.savez(p, adj=adj)
        ds = load_dataset("file", path=str(data), edges=str(p))
        assert ds.edges.values.tolist() == [[0, 1, 2.5], [4, 2, 1.0]], name


def test_file_split_ratios(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, _series(224, 3))  # 201 windows
    ds = load_dataset("file", path=str(path), split=[0.7, 0.1, 0.2])
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 140, "val": 20, "test": 41}
    assert ds.splits["val"][0] == 140 and ds.splits["test"][0] == 160 and ds.splits["test"][-1] == 200


def test_file_interval_and_start_time(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, _series(200, 3))
    ds = load_dataset("file", path=str(path), interval_minutes=15, start_time="2024-03-02 06:30")  # a Saturday
    assert ds.steps_per_day == 96 and ds.timestamps[1] == pd.Timestamp("2024-03-02 06:45")
    assert ds.time_of_day[0] == 26 and ds.day_of_week[0] == 5
    assert ds.time_of_day[70] == 0 and ds.day_of_week[70] == 6  # 70 * 15 min later: Sunday 00:00
    np.testing.assert_array_equal(ds.day_of_week, ds.timestamps.day_of_week)
    default = load_dataset("file", path=str(path))
    assert default.interval_minutes == 5 and default.day_of_week[0] == 0 and default.time_of_day[0] == 0


def _corrupt_npz(path):
    np.savez(path, data=_series())
    raw = bytearray(path.read_bytes())
    raw[200:260] = b"x" * 60  # inside the stored array: CRC mismatch
    path.write_bytes(bytes(raw))


def _truncated_npz(path):
    np.savez(path, data=_series())
    path.write_bytes(path.read_bytes()[:-100])


def _truncated_npy(path):
    np.save(path, _series())
    path.write_bytes(path.read_bytes()[:1000])


BAD_SERIES = {  # file name -> (writer, message fragment)
    "wrongkey.npz": (lambda p: np.savez(p, values=_series()), r"no array named 'data' \(found: values\)"),
    "rank1.npy": (lambda p: np.save(p, np.arange(200.0)), r"expected shape \(T, N\) or \(T, N, C\), got \(200,\)"),
    "rank4.npy": (lambda p: np.save(p, np.zeros((200, 2, 2, 2))), r"got \(200, 2, 2, 2\) \(rank 4\)"),
    "inf.npz": (
        lambda p: np.savez(p, data=np.where(np.eye(200, 5, -3) > 0, np.inf, 1.0)),
        r"inf\.npz: step 3, sensor 0: infinite value inf \(5 such cells\)",
    ),
    "negative.npy": (
        lambda p: np.save(p, np.where(np.eye(200, 5, -9) > 0, -2.0, 1.0)),
        r"negative\.npy: step 9, sensor 0: negative value -2 \(5 such cells\); values must be >= 0",
    ),
    "negative.csv": (
        lambda p: p.write_text("a,b\n" + "1,2\n" * 80 + "3,-4\n"),
        r"negative\.csv: data row 81, column 'b': negative value -4 \(1 such cell\)",
    ),
    "inf.csv": (
        lambda p: p.write_text(
            "time,a\n"
            + "".join(f"2024-01-01 {h:02d}:00,1\n" for h in range(23))
            + "2024-01-01 23:00,inf\n"
            + "2024-01-02 00:00,1\n" * 0
        ),
        r"inf\.csv: data row 24 \(2024-01-01 23:00:00\), column 'a': infinite value inf",
    ),
    "text.npy": (lambda p: np.save(p, np.full((200, 3), "a")), r"expected numeric values, got dtype <U1"),
    "short.npy": (lambda p: np.save(p, _series(60, 3)), r"series of 60 steps is too short: at least 72 steps"),
    "garbage.npz": (
        lambda p: p.write_bytes(b"not numpy at all" * 10),
        r"not a numpy \.npz/\.npy file \(corrupt or truncated\?\)",
    ),
    "empty.npz": (lambda p: p.write_bytes(b""), r"not a numpy \.npz/\.npy file \(corrupt or truncated\?\)"),
    "corrupt.npz": (_corrupt_npz, r"corrupt or truncated\?\): Bad CRC-32"),
    "truncated.npz": (_truncated_npz, r"corrupt or truncated\?"),
    "truncated.npy": (_truncated_npy, r"corrupt or truncated\?"),
    "nonnumeric.csv": (
        lambda p: p.write_text("a,b\n" + "1,2\n" * 80 + "3,x\n"),
        r"non-numeric value 'x' in column 'b' \(data row 81\)",
    ),
    "malformed.csv": (
        lambda p: p.write_text("a,b\n" + "1,2\n" * 80 + "3,4,5\n"),
        r"malformed CSV: .*Expected 2 fields",
    ),
    "empty.csv": (lambda p: p.write_text(""), r"malformed CSV: No columns"),
    "headeronly.csv": (lambda p: p.write_text("a,b\n"), r"no data rows"),
    "data.txt": (lambda p: p.write_text("1,2\n"), r"unsupported file type '\.txt'"),
}


@pytest.mark.parametrize("name", list(BAD_SERIES))
def test_file_bad_series_is_one_clear_error(tmp_path, name):
    write, fragment = BAD_SERIES[name]
    path = tmp_path / name
    write(path)
    before = _listing(tmp_path)
    with pytest.raises(ValueError) as e:
        load_dataset("file", path=str(path))
    assert str(path) in str(e.value)
    assert e.match(fragment)
    assert _listing(tmp_path) == before  # nothing written


BAD_EDGES = {  # file name -> (writer, message fragment)
    "out_of_range.csv": (
        lambda p: _edges_csv(p, ((0, 1, 1.0), (2, 9, 1.0), (-1, 0, 1.0))),
        r"sensor ids out of range 0\.\.4: \[-1, 9\]",
    ),
    "fractional.csv": (lambda p: _edges_csv(p, ((0, 1.5, 1.0),)), r"sensor ids out of range 0\.\.4: \[1\.5\]"),
    "text.csv": (
        lambda p: _edges_csv(p, ((0, 1, 1.0), (2, "b", 1.0))),
        r"column 'to' must be numeric; data row 2 holds 'b'",
    ),
    "empty_cell.csv": (lambda p: p.write_text("from,to,cost\n0,1,1\n2,,1\n"), r"empty cells in the edge list"),
    "inf_cost.csv": (lambda p: _edges_csv(p, ((0, 1, "inf"),)), r"column 'cost' has inf values"),
    "negative_cost.csv": (
        lambda p: _edges_csv(p, ((0, 1, 1.0), (1, 2, -3.0))),
        r"data row 2: column 'cost' is negative \(-3\): a cost is a distance or a weight, >= 0",
    ),
    "adj_negative.npy": (
        lambda p: np.save(p, np.diag(-np.ones(4), 1)),
        r"row 0, column 1: adjacency matrix has negative entries \(4, the first -1\)",
    ),
    "malformed.csv": (lambda p: p.write_text("from,to,cost\n0,1,1\n2,3,4,5,6\n"), r"malformed CSV"),
    "adj_small.npy": (
        lambda p: np.save(p, np.ones((3, 3))),
        r"adjacency matrix must be \(5, 5\) for 5 sensors, got \(3, 3\)",
    ),
    "adj_small.csv": (lambda p: np.savetxt(p, np.ones((5, 4)), delimiter=","), r"must be \(5, 5\) .*got \(5, 4\)"),
    "adj_nan.npy": (lambda p: np.save(p, np.full((5, 5), np.nan)), r"adjacency matrix has NaN/inf entries"),
    "adj_text.csv": (lambda p: p.write_text("a,b\nx,y\n"), r"neither an edge list .* nor a numeric adjacency matrix"),
    "adj_key.npz": (
        lambda p: np.savez(p, weights=np.ones((5, 5))),
        r"no array named 'adj' or 'data' \(found: weights\)",
    ),
}


@pytest.mark.parametrize("name", list(BAD_EDGES))
def test_file_bad_edges_is_one_clear_error(tmp_path, name):
    data = tmp_path / "x.npy"
    np.save(data, _series(200, 5))
    write, fragment = BAD_EDGES[name]
    path = tmp_path / name
    write(path)
    before = _listing(tmp_path)
    with pytest.raises(ValueError) as e:
        load_dataset("file", path=str(data), edges=str(path))
    assert str(path) in str(e.value)
    assert e.match(fragment)
    assert _listing(tmp_path) == before


def test_file_missing_files_and_bad_options(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, _series(200, 5))
    with pytest.raises(FileNotFoundError, match=rf"dataset 'file': {tmp_path / 'nope.npz'} does not exist"):
        load_dataset("file", path=str(tmp_path / "nope.npz"))
    with pytest.raises(FileNotFoundError, match=rf"edge file {tmp_path / 'nope.csv'} does not exist"):
        load_dataset("file", path=str(data), edges=str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match=r"needs path="):
        load_dataset("file")
    with pytest.raises(ValueError, match=r"start_time='soon' is not a timestamp"):
        load_dataset("file", path=str(data), start_time="soon")
    with pytest.raises(ValueError, match=r"interval_minutes=7 must be a positive divisor of a day"):
        load_dataset("file", path=str(data), interval_minutes=7)
    with pytest.raises(ValueError, match=r"split must be three positive ratios"):
        load_dataset("file", path=str(data), split=[0.8, 0.2])
    with pytest.raises(
        ValueError,
        match=r"177 windows .* too few for split \[0\.001, 0\.01, 0\.989\] "
        r"\(train/val/test would get 0/1/176 windows\)",
    ):
        load_dataset("file", path=str(data), split=[0.001, 0.01, 0.989])


def test_chronological_splits_too_short():
    with pytest.raises(ValueError, match=r"series of 25 steps is too short for windows of 24 steps"):
        chronological_splits(25, 24)
    assert [len(v) for v in chronological_splits(26, 24).values()] == [1, 1, 1]


# ---------------------------------------------------------------------------------------------
# normalisation and calendar features


def test_zscore_uses_training_rows_only(tmp_path):
    arr = _series(300, 4)
    np.save(tmp_path / "a.npy", arr)
    ds = load_dataset("file", path=str(tmp_path / "a.npy"))
    rows = ds.train_rows
    assert rows == slice(0, int(ds.splits["train"][-1]) + 24)
    assert ds.mean == pytest.approx(arr[rows].mean(), rel=1e-12) and ds.std == pytest.approx(arr[rows].std(), rel=1e-12)
    changed = arr.copy()
    changed[ds.splits["test"][0] :] *= 10  # test (and val) rows only
    changed[rows.stop :] += 1000
    np.save(tmp_path / "b.npy", changed)
    other = load_dataset("file", path=str(tmp_path / "b.npy"))
    assert (other.mean, other.std) == (ds.mean, ds.std)
    changed[rows.stop - 1] += 1000  # the last row a training target touches
    np.save(tmp_path / "c.npy", changed)
    assert load_dataset("file", path=str(tmp_path / "c.npy")).mean != ds.mean
    feats = ds.features()
    np.testing.assert_allclose(feats[:, :, 0], (arr - ds.mean) / ds.std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.denormalize(ds.normalize(arr)), arr, rtol=1e-12)


def test_train_days_keeps_the_last_days_of_training_windows_on_any_dataset(tmp_path):
    full = load_dataset("synthetic", num_sensors=6, num_days=10)
    ds = load_dataset("synthetic", num_sensors=6, num_days=10, train_days=2)
    stop = full.train_rows.stop
    np.testing.assert_array_equal(ds.splits["train"], full.splits["train"][full.splits["train"] >= stop - 2 * 288])
    assert ds.train_rows == slice(stop - 576, stop) and ds.mean == pytest.approx(ds.target[stop - 576 : stop].mean())
    assert ds.mean != full.mean and {k: list(ds.splits[k]) for k in ("val", "test")} == {
        k: list(full.splits[k]) for k in ("val", "test")
    }
    np.save(tmp_path / "a.npy", _series(300, 4))
    own = load_dataset("file", path=str(tmp_path / "a.npy"), train_days=0.5)
    assert len(own.splits["train"]) == 144 - 24 + 1
    for bad in (7, 0.05):  # more days than the training part holds; fewer than one window
        with pytest.raises(ValueError, match=rf"data.train_days {bad:g}: .* training part holds 6.0\d days"):
            load_dataset("synthetic", num_sensors=6, num_days=10, train_days=bad)


def test_features_calendar_channels(tmp_path):
    np.save(tmp_path / "a.npy", _series(300, 4))
    ds = load_dataset("file", path=str(tmp_path / "a.npy"), start_time="2024-01-07 23:00")  # a Sunday
    feats = ds.features()
    assert feats.shape == (300, 4, 3) and feats.dtype == np.float32
    assert ds.time_of_day[0] == 276 and ds.day_of_week[0] == 6 and ds.day_of_week[12] == 0
    np.testing.assert_allclose(feats[:, 0, 1], ds.time_of_day / 288)
    np.testing.assert_array_equal(feats[:, 2, 2], ds.day_of_week)


def test_constant_training_data_cannot_be_zscored(tmp_path):
    np.save(tmp_path / "flat.npy", np.ones((200, 3)))
    ds = load_dataset("file", path=str(tmp_path / "flat.npy"))
    with pytest.raises(ValueError, match=r"flat\.npy: the training rows 0\.\.128 of channel 0 are constant"):
        ds.features()


# ---------------------------------------------------------------------------------------------
# batches


def _collect(batches, epoch=0, skip=0):
    return [(x.clone(), y.clone()) for x, y in batches.epoch(epoch, skip=skip)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_device_and_dataloader_batches_identical(small, num_workers):
    kw = dict(split="train", batch_size=64, shuffle=True, seed=3)
    dev = make_batches(small, loader="device", **kw)
    dl = make_batches(small, loader="dataloader", num_workers=num_workers, pin_memory=True, prefetch_factor=2, **kw)
    assert len(dev) == len(dl)
    _assert_same(_collect(dev, epoch=1), _collect(dl, epoch=1))


def test_batch_shapes_and_contents(small):
    batches = make_batches(small, "train", 32, shuffle=True, seed=5)
    order = epoch_order(len(small.splits["train"]), 5, 2, True).numpy()
    starts = small.splits["train"][order]
    feats, N = small.features(), small.num_sensors
    for i, (x, y) in enumerate(batches.epoch(2)):
        assert x.shape[1:] == (12, N, 3) and y.shape[1:] == (12, N, 1)
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        for b, s in enumerate(starts[i * 32 : (i + 1) * 32]):
            np.testing.assert_array_equal(y[b, :, :, 0].numpy(), small.series[s + 12 : s + 24, :, 0])
            np.testing.assert_array_equal(x[b].numpy(), feats[s : s + 12])
    assert i == len(batches) - 1


def test_shuffle_differs_across_epochs_and_is_reproducible(small):
    first = make_batches(small, "train", 64, shuffle=True, seed=11)
    again = make_batches(small, "train", 64, shuffle=True, seed=11)
    other = make_batches(small, "train", 64, shuffle=True, seed=12)
    e0, e1 = _collect(first, 0), _collect(first, 1)
    _assert_same(e0, _collect(again, 0))
    _assert_same(e1, _collect(first, 1))
    assert not torch.equal(e0[0][1], e1[0][1])
    assert not torch.equal(e0[0][1], _collect(other, 0)[0][1])
    ys = torch.cat([y for _, y in e0])
    ys_sorted = torch.cat([y for _, y in _collect(make_batches(small, "train", 64), 0)])
    assert sorted(map(tuple, ys[:, 0, :, 0].tolist())) == sorted(map(tuple, ys_sorted[:, 0, :, 0].tolist()))


def test_unshuffled_batches_follow_split_order(small):
    ys = torch.cat([y for _, y in make_batches(small, "val", 50).epoch(4)])
    starts = small.splits["val"]
    expected = np.stack([small.series[s + 12 : s + 24] for s in starts])
    np.testing.assert_array_equal(ys.numpy(), expected)


@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_skip_resumes_mid_epoch(small, loader):
    batches = make_batches(small, "train", 64, shuffle=True, seed=2, loader=loader)
    full = _collect(batches, epoch=3)
    _assert_same(_collect(batches, epoch=3, skip=2), full[2:])
    assert _collect(batches, epoch=3, skip=len(batches)) == []
    with pytest.raises(ValueError, match=r"skip=99 must be between 0 and the \d+ batches"):
        _collect(batches, epoch=3, skip=99)


@pytest.mark.parametrize("loader", ["device", "dataloader"])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_and_drop_last(small, loader, drop_last):
    n = len(small.splits["train"])
    B = 48
    assert n % B != 0
    batches = make_batches(small, "train", B, shuffle=True, drop_last=drop_last, loader=loader)
    got = _collect(batches)
    assert len(batches) == len(got) == (n // B if drop_last else math.ceil(n / B))
    sizes = [x.shape[0] for x, _ in got]
    assert sizes[:-1] == [B] * (len(got) - 1)
    assert sizes[-1] == (B if drop_last else n % B)
    assert batches.num_samples() == sum(sizes)


def test_make_batches_errors(small):
    with pytest.raises(ValueError, match=r"unknown split 'dev' \(have: train, val, test\)"):
        make_batches(small, "dev", 8)
    with pytest.raises(ValueError, match=r"loader must be 'device' or 'dataloader', got 'gpu'"):
        make_batches(small, "train", 8, loader="gpu")
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        make_batches(small, "train", 0)


def test_lags_read_each_windows_own_rows_back_and_nothing_from_its_targets():
    ds = load_dataset("synthetic", num_sensors=5, num_days=4, seed=1, lags=[288, 12])
    plain = load_dataset("synthetic", num_sensors=5, num_days=4, seed=1)
    assert ds.input_steps == 2 * 24 + 12 and all(np.array_equal(ds.splits[k], plain.splits[k]) for k in plain.splits)
    off = ds.input_offsets()
    assert off.max() == ds.in_steps - 1  # every input row before the first target (row s + in_steps)
    feats, pad = ds.padded_features()
    for loader in ("device", "dataloader"):
        x, y = next(iter(make_batches(ds, "test", 4, loader=loader)))  # (B, 60, N, 3)
        s = int(ds.splits["test"][0])
        want = ds.features()[s - 288 : s - 288 + 24]  # the window's own rows a day back: inputs and targets
        assert torch.equal(x[0, :24], torch.from_numpy(want)) and torch.equal(
            x[0, -12:], torch.from_numpy(ds.features()[s : s + 12])
        )
        assert torch.equal(y[0, :, :, 0], torch.from_numpy(ds.target[s + 12 : s + 24].astype("float32")))
    # the first training window's day-back rows lie before row 0: missing (the z-score of 0), at their real times
    x, _ = next(iter(make_batches(ds, "train", 1)))
    assert torch.all(x[0, :24, :, 0] == float(ds.normalize(0.0)))
    first = ds.timestamps[0] - pd.Timedelta(minutes=5 * 288)
    assert x[0, 0, 0, 1].item() == pytest.approx((first.hour * 60 + first.minute) // 5 / 288)
    assert x[0, 0, 0, 2].item() == first.day_of_week
    assert ds.context_missing("train") == 288 and ds.context_missing("test") == 0
    assert ds.summary()["windows_context_missing"]["train"] == 288 and pad == 288 and len(feats) == ds.num_steps + 288


def test_lags_errors_and_options():
    with pytest.raises(ValueError, match=r"data.lags \[6\]: each lag must .* at least data.out_steps \(12\)"):
        load_dataset("synthetic", num_sensors=5, num_days=3, lags=[6])  # its rows would include the targets
    with pytest.raises(ValueError, match="appear once"):
        load_dataset("synthetic", num_sensors=5, num_days=3, lags=[288, 288])
    assert "lags" in config.DATASET_OPTIONS["pems08-tail"] and "lags" in config.DATASET_OPTIONS["file"]


def test_pems08_tail_weekly_lag_keeps_the_protocols_windows(monkeypatch):
    monkeypatch.setenv("STLIB_DATA_DIR", str(SHARED_DATA))
    if not TAIL_NPZ.exists():
        pytest.skip("pems08_tail not available")
    ds, plain = load_dataset("pems08-tail", lags=[2016]), load_dataset("pems08-tail")
    assert all(np.array_equal(ds.splits[k], plain.splits[k]) for k in plain.splits) and ds.mean == plain.mean
    assert ds.context_missing("train") == 2016 and ds.context_missing("val") == ds.context_missing("test") == 0
