"""Loaders: synthetic, public PeMS files, METR-LA / PEMS-BAY, the pems08-tail protocol and your own files.

File readers live in stlib.data.files, graph readers in stlib.data.graphs: each problem is one ValueError naming
the file. Only `download` writes, to a temp file that it renames once the content is verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import data_dir
from .core import Dataset, chronological_splits
from .files import SeriesFile, clean_values, read_npz, read_series, regular_times
from .graphs import edge_frame, read_graph
from .synthetic import generate

# first timestamp (midnight) of each public file
PEMS_START = {"PEMS03": "2018-09-01", "PEMS04": "2018-01-01", "PEMS07": "2017-05-01", "PEMS08": "2016-07-01"}
# git blob ids of the public raw files (identical in every public copy)
PEMS_BLOB = {"PEMS08": "f5f3e84a00417573aa8487fe1e9e8cd13c6026c8", "PEMS04": "a1a39eac4b86963b1ac22874fd1cc693eb642cd2"}
PEMS_URL = "https://raw.githubusercontent.com/Davidham3/ASTGCN-2019-mxnet/master/data/{name}/{lower}.npz"
PEMS_DIST_URL = "https://raw.githubusercontent.com/Davidham3/ASTGCN-2019-mxnet/master/data/{name}/distance.csv"

TAIL_DIR = "pems08_tail"
TAIL_FILE = "PEMS08_flow_tail.npz"
TAIL_START_INDEX = 10700  # global PEMS08 row of tail row 0
TAIL_SPLITS = {"train": (0, 2833), "val": (2834, 3542), "test": (3566, 7132)}  # inclusive window starts

# DCRNN's speed datasets: <data dir>/<name>/<table> + the first graph file present
DCRNN_FILES = {
    "METR-LA": ("metr-la.h5", ("adj_mx.pkl", "distances_la_2012.csv")),
    "PEMS-BAY": ("pems-bay.h5", ("adj_mx_bay.pkl", "adj_mx.pkl", "distances_bay_2017.csv")),
}
# (time steps, sensors) of the public files: a file of another shape is another (or a truncated) file
DCRNN_SHAPES = {"METR-LA": (34272, 207), "PEMS-BAY": (52116, 325)}
DCRNN_SOURCE = "the DCRNN distribution (github.com/liyaguang/DCRNN: the data files are linked from its README)"

SPLIT = (0.6, 0.2, 0.2)  # DataConfig.split's default
INTERVAL = 5  # DataConfig.interval_minutes's default


def require(name: str, *paths: Path) -> None:
    """FileNotFoundError for the first missing path of dataset `name`, saying where to get it."""
    for path in paths:
        if path.exists():
            continue
        if name in DCRNN_FILES:
            hint = f"{DCRNN_SOURCE}; nothing downloads them here"
        elif name in PEMS_BLOB:
            hint = f"python -m stlib.data download {name}"
        else:
            hint = f"place the file there by hand (no public checksum known for {name})"
        raise FileNotFoundError(
            f"dataset '{name}': missing file {path} (data directory searched: {data_dir()}; "
            f"set STLIB_DATA_DIR to point elsewhere). To get it: {hint}"
        )


def flow_unit(interval_minutes: int) -> str:
    return f"vehicles/{interval_minutes} min"


def load_synthetic(
    num_sensors=48, num_days=21, seed=0, interval_minutes=5, in_steps=12, out_steps=12, split=SPLIT, start_time=None
) -> Dataset:
    kw = {"start_time": start_time} if start_time else {}
    series, start, edges = generate(num_sensors, num_days, seed, interval_minutes, **kw)
    splits = chronological_splits(len(series), in_steps + out_steps, split)
    source = f"generated (num_sensors={num_sensors}, num_days={num_days}, seed={seed})"
    unit = flow_unit(interval_minutes)
    return Dataset(
        "synthetic", series, start, interval_minutes, edges, splits, in_steps, out_steps, source=source, unit=unit
    )


def load_pems(name: str, in_steps=12, out_steps=12, split=SPLIT, missing_value=None) -> Dataset:
    folder = data_dir() / name
    npz, ids_file = folder / f"{name}.npz", folder / f"{name}.txt"
    require(name, npz, folder / "distance.csv")
    series, marked = clean_values(read_series(npz), 3 * (in_steps + out_steps), missing_value)
    ids = None
    if ids_file.exists():  # PEMS03 names sensors by real ids
        try:
            ids = [str(v) for v in np.loadtxt(ids_file, dtype=np.int64, ndmin=1)]
        except ValueError as e:
            raise ValueError(f"{ids_file}: expected one integer sensor id per line: {e}") from None
    edges = read_graph(folder / "distance.csv", series.shape[1], ids, by="id" if ids else "position")
    splits = chronological_splits(len(series), in_steps + out_steps, split)
    kw = dict(source=str(npz), sensor_ids=ids, unit=flow_unit(5), marked_missing=marked)
    return Dataset(name, series, pd.Timestamp(PEMS_START[name]), 5, edges, splits, in_steps, out_steps, **kw)


def load_pems08_tail(in_steps=12, out_steps=12) -> Dataset:
    """The pems08-tail protocol: real PEMS08 flow rows 10700..17855 with the exact standard windows."""
    if (in_steps, out_steps) != (12, 12):
        raise ValueError("pems08-tail is defined for 12 input and 12 output steps (data.in_steps, data.out_steps)")
    root = data_dir()
    tail, full = root / TAIL_DIR / TAIL_FILE, root / "PEMS08" / "PEMS08.npz"
    if tail.exists():
        series, source, dist = clean_values(read_series(tail), 100)[0], str(tail), tail.with_name("distance.csv")
    elif full.exists():  # derive from the full public file: rows 10700.., channel 0 (flow)
        series = clean_values(read_series(full), 100)[0][TAIL_START_INDEX:, :, :1]
        source, dist = f"{full} rows {TAIL_START_INDEX}.. channel 0", full.with_name("distance.csv")
    else:
        raise FileNotFoundError(
            f"dataset 'pems08-tail': neither {tail} nor {full} exists (data directory searched: {root}; set "
            "STLIB_DATA_DIR to point elsewhere). To get it: python -m stlib.data download PEMS08"
        )
    if series.shape != (7156, 170, 1):
        raise ValueError(f"{source}: pems08-tail expects shape (7156, 170, 1), got {series.shape}")
    require("PEMS08", dist)
    splits = {k: np.arange(a, b + 1) for k, (a, b) in TAIL_SPLITS.items()}
    start = pd.Timestamp(PEMS_START["PEMS08"]) + pd.Timedelta(minutes=5 * TAIL_START_INDEX)
    edges = read_graph(dist, 170)
    return Dataset("pems08-tail", series, start, 5, edges, splits, source=source, unit=flow_unit(5))


def load_dcrnn(name: str, in_steps=12, out_steps=12, split=SPLIT, missing_value=None) -> Dataset:
    """METR-LA / PEMS-BAY in DCRNN's layout: a pandas HDF5 table (DatetimeIndex, a column per sensor id, missing
    readings 0) and adj_mx.pkl or the distances CSV; DCRNN's 7:1:2 split unless `split` is set otherwise."""
    table, graphs = DCRNN_FILES[name]
    folder = data_dir() / name
    h5 = folder / table
    require(name, h5)
    graph = next((folder / g for g in graphs if (folder / g).exists()), folder / graphs[0])
    require(name, graph)
    sf = read_series(h5)
    if sf.times is None:
        raise ValueError(f"{h5}: expected DCRNN's layout, a table indexed by timestamps (DatetimeIndex)")
    expected = DCRNN_SHAPES.get(name)
    if expected is not None and sf.values.shape[:2] != expected:
        raise ValueError(
            f"{h5}: {sf.values.shape[0]} time steps x {sf.values.shape[1]} sensors, but the public {name} "
            f"file holds {expected[0]} x {expected[1]}: a different or truncated file (get it from {DCRNN_SOURCE})"
        )
    series, marked = clean_values(sf, 3 * (in_steps + out_steps), missing_value)
    start, interval, gaps = regular_times(sf, allow_gaps=True)  # PEMS-BAY skips the DST hour
    edges = read_graph(graph, series.shape[1], sf.sensors, by="id", unknown="drop")
    n, window, times = len(series), in_steps + out_steps, sf.times if gaps else None
    splits = dcrnn_splits(n, window) if tuple(split) == SPLIT else chronological_splits(n, window, split)
    kw = dict(source=str(h5), sensor_ids=sf.sensors, value_name="speed", unit="mph", times=times, marked_missing=marked)
    return Dataset(name, series, start, interval, edges, splits, in_steps, out_steps, **kw)


def dcrnn_splits(num_steps: int, window: int) -> dict[str, np.ndarray]:
    """DCRNN's split of all window starts: round(70 %) train, round(20 %) test (the last), the rest val."""
    n = num_steps - window + 1
    train, test = round(n * 0.7), round(n * 0.2)
    if n < 3 or not 0 < train < n - test < n:
        raise ValueError(
            f"series of {num_steps} steps has {max(n, 0)} windows of {window} steps: too few for DCRNN's 7:1:2 split"
        )
    starts = np.arange(n)
    return {"train": starts[:train], "val": starts[train : n - test], "test": starts[n - test :]}


def load_file(
    path=None,
    edges=None,
    interval_minutes=INTERVAL,
    start_time=None,
    split=SPLIT,
    in_steps=12,
    out_steps=12,
    missing_value=None,
    edges_by="auto",
) -> Dataset:
    """Your own data: a CSV (rows = time, columns = sensors), a (T, N[, C]) .npz/.npy or a pandas HDF5 table,
    with an optional graph (edge list by sensor id or position, dense matrix, adj_mx.pkl)."""
    if not path:
        raise ValueError("dataset 'file' needs path=... (data.path): a .csv, .npz, .npy or .h5 with rows = time steps")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset 'file': {path.resolve()} does not exist")
    if interval_minutes < 1 or 1440 % interval_minutes:
        raise ValueError(f"interval_minutes={interval_minutes} must be a positive divisor of a day (1440 minutes)")
    sf = read_series(path)
    series, marked = clean_values(sf, 3 * (in_steps + out_steps), missing_value)
    if len(dark := np.flatnonzero((series[:, :, 0] == 0).all(axis=0))):
        name = f"'{sf.sensors[dark[0]]}'" if sf.sensors else f"at position {dark[0]}"
        raise ValueError(
            f"{path}: sensor {name} has no reading at all ({len(dark)} such sensor{'s' * (len(dark) > 1)}): a model "
            "cannot learn a sensor it never sees; remove its column"
        )
    start, interval = file_calendar(sf, start_time, interval_minutes)
    edge_df = read_graph(Path(edges).expanduser(), series.shape[1], sf.sensors, by=edges_by) if edges else edge_frame()
    splits = chronological_splits(len(series), in_steps + out_steps, split)
    kw = dict(source=str(path), sensor_ids=sf.sensors, value_name="value", marked_missing=marked)
    kw |= dict(dropped_columns=sf.dropped_columns, dropped_rows=sf.dropped_rows, time_zone=sf.time_zone)
    kw["missing_tokens"] = sf.missing_tokens
    return Dataset(path.stem, series, start, interval, edge_df, splits, in_steps, out_steps, **kw)


def file_calendar(sf: SeriesFile, start_time, interval_minutes: int) -> tuple[pd.Timestamp, int]:
    """(start, interval): the file's timestamps when it has them (a contradicting option is an error), else the options."""
    if sf.times is None:
        return parse_start(start_time), interval_minutes
    start, interval, _ = regular_times(sf)
    if start_time and parse_start(start_time) != start:
        raise ValueError(
            f"start_time={start_time!r} contradicts {sf.path}, whose first timestamp is {start}: "
            "drop start_time (the file's timestamps set the calendar)"
        )
    if interval_minutes not in (INTERVAL, interval):
        raise ValueError(
            f"interval_minutes={interval_minutes} contradicts {sf.path}, whose timestamps are "
            f"{interval} minutes apart: drop interval_minutes (the file's timestamps set it)"
        )
    return start, interval


def parse_start(start_time) -> pd.Timestamp:
    """The start_time option as a Timestamp (default 2000-01-03 00:00, a Monday)."""
    try:
        return pd.Timestamp(start_time or "2000-01-03 00:00")
    except (ValueError, TypeError):
        raise ValueError(f"start_time={start_time!r} is not a timestamp (e.g. '2024-01-01 00:00')") from None


# ---------------------------------------------------------------------------------------------
# download


def git_blob_id(path: Path) -> str:
    """The git blob id of a file (sha1 over b'blob <size>\\0' + bytes), as `git hash-object` prints."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: h).hexdigest()


def fetch(url: str, dest: Path, blob_id: str | None = None) -> Path:
    """Download url to dest atomically, verifying its git blob id when given; a failure leaves nothing behind."""
    dest = Path(dest)
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError) as e:
            raise OSError(f"{url}: download failed ({getattr(e, 'reason', e)}); nothing saved to {dest}") from None
        if blob_id is not None and (got := git_blob_id(Path(tmp))) != blob_id:
            raise ValueError(f"{url}: downloaded file has git blob id {got}, expected {blob_id}; not saved to {dest}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for p in created:  # the folders this call made, deepest first, up to the first non-empty one
            try:
                p.rmdir()
            except OSError:
                break
        raise
    return dest


def download(name: str, root: Path | None = None, url: str | None = None, dist_url: str | None = None) -> Path:
    """Fetch a public PeMS file (+ distance.csv) into the data directory and verify it."""
    folder = (root or data_dir()) / name.upper()
    if name.upper() in DCRNN_FILES:
        table, graphs = DCRNN_FILES[name.upper()]
        raise ValueError(
            f"'{name}' does not download here: get {table} and {graphs[0]} from {DCRNN_SOURCE} and place them in {folder}"
        )
    if name not in PEMS_BLOB:
        raise ValueError(f"no verified public source known for '{name}' (downloadable: {', '.join(PEMS_BLOB)})")
    npz, dist = folder / f"{name}.npz", folder / "distance.csv"
    if npz.exists() and git_blob_id(npz) == PEMS_BLOB[name]:
        print(f"{npz} already present and verified")
    else:
        fetch(url or PEMS_URL.format(name=name, lower=name.lower()), npz, PEMS_BLOB[name])
        print(f"{npz} downloaded and verified (git blob {PEMS_BLOB[name]})")
    if not dist.exists():
        fetch(dist_url or PEMS_DIST_URL.format(name=name), dist)
        try:
            read_graph(dist, int(read_npz(npz).shape[1]))  # validate before trusting it
        except ValueError:
            dist.unlink(missing_ok=True)
            raise
    return folder
