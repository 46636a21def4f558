"""Loaders: synthetic, real PeMS files, the pems08-tail protocol and your own files.

Every loader validates what it reads and raises one ValueError naming the file and the problem.
Nothing here writes except `download`, which writes to a temp file and renames it only once the
content is verified.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import data_dir
from .core import Dataset, chronological_splits

PEMS_NAMES = ("PEMS03", "PEMS04", "PEMS07", "PEMS08")
PEMS_START = {  # first timestamp of each public file
    "PEMS03": "2018-09-01 00:00",
    "PEMS04": "2018-01-01 00:00",
    "PEMS07": "2017-05-01 00:00",
    "PEMS08": "2016-07-01 00:00",
}
# git blob ids of the public raw files (identical in every public copy)
PEMS_BLOB = {
    "PEMS08": "f5f3e84a00417573aa8487fe1e9e8cd13c6026c8",
    "PEMS04": "a1a39eac4b86963b1ac22874fd1cc693eb642cd2",
}
PEMS_URL = "https://raw.githubusercontent.com/Davidham3/ASTGCN-2019-mxnet/master/data/{name}/{lower}.npz"
PEMS_DIST_URL = "https://raw.githubusercontent.com/Davidham3/ASTGCN-2019-mxnet/master/data/{name}/distance.csv"

TAIL_DIR = "pems08_tail"
TAIL_FILE = "PEMS08_flow_tail.npz"
TAIL_START_INDEX = 10700  # global PEMS08 row of tail row 0
TAIL_SPLITS = {"train": (0, 2833), "val": (2834, 3542), "test": (3566, 7132)}  # inclusive window starts

NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"  # first bytes of an .npy and of an .npz (a zip archive)
TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "")  # names of a leading time column in a CSV


# ---------------------------------------------------------------------------------------------
# validation of arrays and files


def check_series(arr, where: str, min_steps: int) -> np.ndarray:
    """(T, N) or (T, N, C) finite numeric array -> float32 (T, N, C); ValueError naming `where`."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{where}: expected numeric values, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{where}: expected shape (T, N) or (T, N, C), got {arr.shape} (rank {arr.ndim})")
    if min(arr.shape) == 0:
        raise ValueError(f"{where}: empty array of shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        t, n, c = np.argwhere(bad)[0]
        raise ValueError(f"{where}: {int(bad.sum())} NaN/inf values (first at step {t}, sensor {n}, channel {c}); "
                         "store missing values as 0")
    if arr.shape[0] < min_steps:
        raise ValueError(f"{where}: series of {arr.shape[0]} steps is too short: at least {min_steps} steps are "
                         "needed so that train, val and test each get windows of in_steps + out_steps steps")
    return arr.astype(np.float32)


def read_npz(path: Path, key: str | tuple[str, ...] = "data"):
    """The array under `key` (the first present of several) of an .npz, or the array of an .npy; clear errors."""
    path, keys = Path(path), (key,) if isinstance(key, str) else tuple(key)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file does not exist")
    with open(path, "rb") as f:
        head = f.read(len(NPY_MAGIC))
    if not head.startswith((NPY_MAGIC, ZIP_MAGIC)):
        raise ValueError(f"{path}: not a numpy .npz/.npy file (corrupt or truncated?): it starts with {head!r}")
    try:
        if head.startswith(NPY_MAGIC):
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            found = [k for k in keys if k in z.files]
            if found:
                return z[found[0]]
            names = z.files
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable numeric numpy file (corrupt or truncated?): {e}") from None
    wanted = " or ".join(f"'{k}'" for k in keys)
    raise ValueError(f"{path}: no array named {wanted} (found: {', '.join(names) or 'none'})")


def read_edges(path: Path, num_sensors: int, ids: dict | None = None) -> pd.DataFrame:
    """An edge list CSV (from, to[, cost]) or a dense (N, N) adjacency (.npy/.npz/.csv) -> from/to/cost."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge file {path} does not exist")
    if path.suffix in (".npy", ".npz"):
        return _edges_from_matrix(np.asarray(read_npz(path, key=("adj", "data"))), path, num_sensors)
    df = _read_csv(path)
    cols = [str(c).strip().lower() for c in df.columns]
    if {"from", "to"} <= set(cols):
        df.columns = cols
        if "cost" not in df:
            df["cost"] = 1.0
        df = df[["from", "to", "cost"]]
        if ids is not None:  # real sensor ids (PEMS03) -> row indices
            unknown = sorted(set(df["from"]).union(df["to"]) - set(ids))
            if unknown:
                raise ValueError(f"{path}: sensor ids not in the id list: {unknown[:5]}")
            df = df.assign(**{"from": df["from"].map(ids), "to": df["to"].map(ids)})
        for c in ("from", "to", "cost"):
            if not pd.api.types.is_numeric_dtype(df[c]):
                row, val = _first_non_numeric(df[c])
                raise ValueError(f"{path}: column '{c}' must be numeric; data row {row + 1} holds {val!r}")
        empty = df.isna().any(axis=1).to_numpy()
        if empty.any():
            raise ValueError(f"{path}: empty cells in the edge list (first at data row {int(np.argmax(empty)) + 1})")
        if not np.isfinite(df["cost"].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{path}: column 'cost' has inf values")
        ids_seen = pd.concat([df["from"], df["to"]])
        out = ids_seen[(ids_seen < 0) | (ids_seen >= num_sensors) | (ids_seen != ids_seen.round())]
        if len(out):
            raise ValueError(f"{path}: sensor ids out of range 0..{num_sensors - 1}: {sorted(set(out.tolist()))[:5]}")
        return df.astype({"from": np.int64, "to": np.int64, "cost": np.float64}).reset_index(drop=True)
    # no from/to header: a dense adjacency matrix written as CSV
    try:
        mat = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: neither an edge list with columns from,to[,cost] nor a numeric adjacency matrix: {e}") from None
    return _edges_from_matrix(mat, path, num_sensors)


def _edges_from_matrix(mat: np.ndarray, path: Path, num_sensors: int) -> pd.DataFrame:
    """A dense (N, N) adjacency -> from/to/cost rows of its nonzero off-diagonal entries."""
    if not np.issubdtype(mat.dtype, np.number):
        raise ValueError(f"{path}: adjacency matrix must be numeric, got dtype {mat.dtype}")
    if mat.shape != (num_sensors, num_sensors):
        raise ValueError(f"{path}: adjacency matrix must be ({num_sensors}, {num_sensors}) for {num_sensors} sensors, got {mat.shape}")
    if not np.isfinite(mat).all():
        raise ValueError(f"{path}: adjacency matrix has NaN/inf entries")
    src, dst = np.nonzero(mat)
    keep = src != dst
    return pd.DataFrame({"from": src[keep].astype(np.int64), "to": dst[keep].astype(np.int64),
                         "cost": mat[src[keep], dst[keep]].astype(np.float64)})


def _read_csv(path: Path, header="infer") -> pd.DataFrame:
    """pd.read_csv with one ValueError naming the file for anything unreadable."""
    try:
        return pd.read_csv(path, header=header)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{path}: malformed CSV: {str(e).strip()}") from None


def _first_non_numeric(col: pd.Series) -> tuple[int, object]:
    """(row position, value) of the first non-empty cell of col that is not a number."""
    bad = (pd.to_numeric(col, errors="coerce").isna() & col.notna()).to_numpy()
    i = int(np.argmax(bad)) if bad.any() else 0
    return i, col.iloc[i]


def missing_file_error(path: Path, name: str) -> FileNotFoundError:
    hint = (f"python -m stlib.data download {name}" if name in PEMS_BLOB
            else f"place the file there by hand (no public checksum known for {name})")
    return FileNotFoundError(f"dataset '{name}': missing file {path} (data directory searched: {data_dir()}; "
                             f"set STLIB_DATA_DIR to point elsewhere). To get it: {hint}")


# ---------------------------------------------------------------------------------------------
# loaders


def load_synthetic(num_sensors=48, num_days=21, seed=0, interval_minutes=5, in_steps=12, out_steps=12,
                   split=(0.6, 0.2, 0.2), start_time=None, **_) -> Dataset:
    from .synthetic import generate

    kw = {"start_time": start_time} if start_time else {}
    series, start, edges = generate(num_sensors=num_sensors, num_days=num_days, seed=seed,
                                    interval_minutes=interval_minutes, **kw)
    splits = chronological_splits(series.shape[0], in_steps + out_steps, split)
    return Dataset("synthetic", series, start, interval_minutes, edges, splits, in_steps, out_steps,
                   source=f"generated (num_sensors={num_sensors}, num_days={num_days}, seed={seed})")


def load_pems(name: str, in_steps=12, out_steps=12, split=(0.6, 0.2, 0.2), **_) -> Dataset:
    folder = data_dir() / name
    npz, dist = folder / f"{name}.npz", folder / "distance.csv"
    for p in (npz, dist):
        if not p.exists():
            raise missing_file_error(p, name)
    series = check_series(read_npz(npz), str(npz), 3 * (in_steps + out_steps))
    ids_file = folder / f"{name}.txt"  # PEMS03 names sensors by real ids
    ids = None
    if ids_file.exists():
        try:
            ids = {int(v): i for i, v in enumerate(np.loadtxt(ids_file, dtype=np.int64, ndmin=1))}
        except ValueError as e:
            raise ValueError(f"{ids_file}: expected one integer sensor id per line: {e}") from None
    edges = read_edges(dist, series.shape[1], ids)
    splits = chronological_splits(series.shape[0], in_steps + out_steps, split)
    return Dataset(name, series, pd.Timestamp(PEMS_START[name]), 5, edges, splits, in_steps, out_steps, source=str(npz))


def load_pems08_tail(in_steps=12, out_steps=12, **_) -> Dataset:
    """The pems08-tail protocol: real PEMS08 flow rows 10700..17855 with the exact standard windows."""
    if (in_steps, out_steps) != (12, 12):
        raise ValueError("pems08-tail is defined for 12 input and 12 output steps (data.in_steps, data.out_steps)")
    root = data_dir()
    tail, dist = root / TAIL_DIR / TAIL_FILE, root / TAIL_DIR / "distance.csv"
    full = root / "PEMS08" / "PEMS08.npz"
    if tail.exists():
        series = check_series(read_npz(tail), str(tail), 100)
        source = str(tail)
    elif full.exists():  # derive from the full public file: rows 10700.., channel 0 (flow)
        series = check_series(read_npz(full), str(full), 100)[TAIL_START_INDEX:, :, :1]
        source = f"{full} rows {TAIL_START_INDEX}.. channel 0"
        dist = root / "PEMS08" / "distance.csv"
    else:
        raise FileNotFoundError(
            f"dataset 'pems08-tail': neither {tail} nor {full} exists (data directory searched: {root}; set "
            "STLIB_DATA_DIR to point elsewhere). To get it: python -m stlib.data download PEMS08")
    if series.shape != (7156, 170, 1):
        raise ValueError(f"{source}: pems08-tail expects shape (7156, 170, 1), got {series.shape}")
    if not dist.exists():
        raise missing_file_error(dist, "PEMS08")
    edges = read_edges(dist, 170)
    splits = {k: np.arange(a, b + 1) for k, (a, b) in TAIL_SPLITS.items()}
    start = pd.Timestamp(PEMS_START["PEMS08"]) + pd.Timedelta(minutes=5 * TAIL_START_INDEX)
    return Dataset("pems08-tail", series, start, 5, edges, splits, 12, 12, source=source,
                   extra={"global_start_index": TAIL_START_INDEX})


def load_file(path=None, edges=None, interval_minutes=5, start_time=None, split=(0.6, 0.2, 0.2),
              in_steps=12, out_steps=12, **_) -> Dataset:
    """Your own data: a (T, N[, C]) .npz/.npy or a CSV matrix (rows = time, columns = sensors) + a graph."""
    if not path:
        raise ValueError("dataset 'file' needs path=... (data.path): a .npz, .npy or .csv with rows = time steps")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset 'file': {path.resolve()} does not exist")
    if interval_minutes < 1 or 1440 % interval_minutes:
        raise ValueError(f"interval_minutes={interval_minutes} must be a positive divisor of a day (1440 minutes)")
    start = _parse_start(start_time)
    min_steps = 3 * (in_steps + out_steps)
    if path.suffix in (".npz", ".npy"):
        series = check_series(read_npz(path), str(path), min_steps)
    elif path.suffix == ".csv":
        series = check_series(_read_matrix_csv(path), str(path), min_steps)
    else:
        raise ValueError(f"{path}: unsupported file type '{path.suffix}' (use .npz, .npy or .csv)")
    n = series.shape[1]
    if edges:
        edge_df = read_edges(Path(edges).expanduser(), n)
    else:
        edge_df = pd.DataFrame({"from": pd.Series(dtype=np.int64), "to": pd.Series(dtype=np.int64),
                                "cost": pd.Series(dtype=np.float64)})
    splits = chronological_splits(series.shape[0], in_steps + out_steps, split)
    return Dataset(path.stem, series, start, interval_minutes, edge_df, splits, in_steps, out_steps, source=str(path))


def _parse_start(start_time) -> pd.Timestamp:
    """The start_time option as a Timestamp (default 2000-01-03 00:00, a Monday)."""
    if not start_time:
        return pd.Timestamp("2000-01-03 00:00")
    try:
        return pd.Timestamp(start_time)
    except (ValueError, TypeError):
        raise ValueError(f"start_time={start_time!r} is not a timestamp (e.g. '2024-01-01 00:00')") from None


def _read_matrix_csv(path: Path) -> np.ndarray:
    """A CSV matrix (rows = time steps, columns = sensors, optional leading time column) -> (T, N) array.

    The first line names the sensors; a first line of decimal numbers is read as data (no header).
    """
    df = _read_csv(path, header="infer" if _csv_has_header(path) else None)
    if df.empty:
        raise ValueError(f"{path}: no data rows (expected rows = time steps, columns = sensors)")
    if _is_time_column(df.iloc[:, 0], df.columns[0]):
        df = df.iloc[:, 1:]
    if df.shape[1] == 0:
        raise ValueError(f"{path}: no sensor columns besides the time column")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        row, val = _first_non_numeric(df[bad[0]])
        raise ValueError(f"{path}: non-numeric value {val!r} in column '{bad[0]}' (data row {row + 1})")
    return df.to_numpy(dtype=np.float64)


def _csv_has_header(path: Path) -> bool:
    """False when the first line (after an optional timestamp) is all numbers, some written as decimals.

    Sensor names may be integers (ids), so a first line of plain integers counts as a header.
    """
    try:
        with open(path, newline="") as f:
            fields = [v.strip() for v in next(csv.reader(f), [])]
    except (UnicodeDecodeError, csv.Error):
        return True  # pandas reports the problem
    if fields and _is_timestamp(fields[0]):
        fields = fields[1:]
    numeric = bool(fields) and all(_as_float(v) is not None for v in fields)
    return not (numeric and any(c in v for v in fields for c in ".eE"))


def _as_float(text: str) -> float | None:
    """float(text), or None when text is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def _is_timestamp(text: str) -> bool:
    """True for a date/time string such as '2024-01-01 00:05' (not a plain number)."""
    if _as_float(text) is not None:
        return False
    try:
        return pd.Timestamp(text) is not pd.NaT
    except (ValueError, TypeError):
        return False


def _is_time_column(col: pd.Series, name) -> bool:
    """A leading time column: named time/timestamp/date/datetime (or unnamed, an index), or holding timestamps."""
    label = str(name).strip().lower()
    if label in TIME_COLUMNS or label.startswith("unnamed:"):
        return True
    if pd.api.types.is_numeric_dtype(col):
        return False
    head = col.dropna().head(5).astype(str)
    return len(head) > 0 and all(_is_timestamp(v) for v in head)


# ---------------------------------------------------------------------------------------------
# download


def git_blob_id(path: Path) -> str:
    """The git blob id of a file (sha1 over b'blob <size>\\0' + bytes), as `git hash-object` prints."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: Path, blob_id: str | None = None) -> Path:
    """Download url to dest atomically; verify its git blob id when given. Nothing partial is left."""
    dest = Path(dest)
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_url(url, out, dest)
        if blob_id is not None:
            got = git_blob_id(Path(tmp))
            if got != blob_id:
                raise ValueError(f"{url}: downloaded file has git blob id {got}, expected {blob_id}; "
                                 f"not saved to {dest}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        _remove_empty(created)
        raise
    return dest


def _copy_url(url: str, out, dest: Path) -> None:
    """Stream url into the open file out; an OSError naming url and dest if the transfer fails."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f"{url}: download failed ({getattr(e, 'reason', e)}); nothing saved to {dest}") from None


def _remove_empty(folders) -> None:
    """Remove the folders a failed fetch created, deepest first, stopping at the first non-empty one."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def download(name: str, root: Path | None = None, url: str | None = None, dist_url: str | None = None) -> Path:
    """Fetch a public PeMS file (+ distance.csv) into the data directory and verify it."""
    if name not in PEMS_BLOB:
        raise ValueError(f"no verified public source known for '{name}' (downloadable: {', '.join(PEMS_BLOB)})")
    folder = (root or data_dir()) / name
    npz = folder / f"{name}.npz"
    if npz.exists() and git_blob_id(npz) == PEMS_BLOB[name]:
        print(f"{npz} already present and verified")
    else:
        fetch(url or PEMS_URL.format(name=name, lower=name.lower()), npz, PEMS_BLOB[name])
        print(f"{npz} downloaded and verified (git blob {PEMS_BLOB[name]})")
    dist = folder / "distance.csv"
    if not dist.exists():
        fetch(dist_url or PEMS_DIST_URL.format(name=name), dist)
        try:
            read_edges(dist, int(read_npz(npz).shape[1]))  # validate before trusting it
        except ValueError:
            dist.unlink(missing_ok=True)
            raise
    return folder
