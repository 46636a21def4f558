"""Sensor graphs -> from/to/cost rows by sensor position (0..N-1): `read_graph`.

Reads an edge list CSV (`from,to[,cost]`, sensors by id or position), a dense N x N matrix (.npy/.npz, or a CSV,
plain or labelled with sensor ids) or DCRNN's `adj_mx.pkl`. A pickle can run code, so `AdjacencyUnpickler` admits
only the globals a list of ids, a dict and a numpy array need. Each error is one ValueError naming file, row, column.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from .files import first_non_numeric, read_csv, read_npz, sniff_csv


def edge_frame(src=(), dst=(), cost=()) -> pd.DataFrame:
    """from, to (int64 positions) and cost (float64) columns; no arguments: no edges."""
    return pd.DataFrame(
        {"from": np.asarray(src, np.int64), "to": np.asarray(dst, np.int64), "cost": np.asarray(cost, np.float64)}
    )


def norm_id(x) -> str:
    """A sensor id as text: '400001', also for 400001 and 400001.0 (ids written as numbers)."""
    s = str(x).strip()
    return s[:-2] if s.endswith(".0") and s[:-2].lstrip("-").isdigit() else s


def _ids(values, limit: int = 5) -> str:
    """'[a, b, c, ...]': the first `limit` of values."""
    values = list(values)
    return "[" + ", ".join(map(str, values[:limit])) + (", ..." if len(values) > limit else "") + "]"


def read_graph(
    path: Path, num_sensors: int, sensors: list[str] | None = None, by: str = "auto", unknown: str = "error"
) -> pd.DataFrame:
    """The edges of a graph file as from/to (sensor positions) and cost rows.

    sensors: the data's sensor ids in column order (None: the data names none, edges go by position); by: how an
    edge list names sensors (auto | id | position); unknown: 'error' or 'drop' for ids the data does not have
    (DCRNN's distance files cover more sensors than its datasets)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"edge file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return labelled_matrix_edges(*read_adj_pickle(path), path, num_sensors, sensors, unknown)
    if suffix in (".npy", ".npz"):
        return matrix_edges(np.asarray(read_npz(path, key=("adj", "data"))), path, num_sensors)
    encoding, sep, skip, _ = sniff_csv(path)  # ',' ';' or tab, as the series reader detects them
    kw = dict(sep=sep, encoding=encoding, skiprows=skip)
    df = read_csv(path, dtype=str, keep_default_na=False, **kw)
    cols = [str(c).strip().lower() for c in df.columns]
    if {"from", "to"} <= set(cols):
        df.columns = cols
        if sep != "," and "cost" in df:  # ';' or tab between fields: '1,5' is a decimal comma
            df["cost"] = df["cost"].where(df["cost"].str.count(",") != 1, df["cost"].str.replace(",", "."))
        return edge_list(df, path, num_sensors, sensors, by, unknown)
    number = (lambda v: float(v.replace(",", "."))) if sep != "," else float
    try:  # a CSV matrix: plain numbers (sensors by position) ...
        mat = np.loadtxt(path, delimiter=sep, encoding=encoding, skiprows=skip, converters=number, ndmin=2)
    except ValueError:  # ... or a header (and an index column) of sensor ids
        return labelled_matrix_edges(*_labelled_matrix_csv(path, kw), path, num_sensors, sensors, unknown)
    return matrix_edges(mat, path, num_sensors)


def edge_list(df: pd.DataFrame, path: Path, num_sensors: int, sensors, by: str, unknown: str) -> pd.DataFrame:
    """from,to[,cost] rows of strings -> positions and float costs (cost defaults to 1)."""
    cells = df[[c for c in ("from", "to", "cost") if c in df]].apply(lambda c: c.str.strip())  # (E, 2 or 3)
    empty = cells == ""
    if empty.to_numpy().any():
        r, c = _first(empty)
        raise ValueError(
            f"{path}: data row {r + 1}, column '{c}': empty cells in the edge list (first at data row {r + 1})"
        )
    ends = cells[["from", "to"]]
    if _edge_mode(ends, path, sensors, by) == "id":
        pos = _by_id(ends, path, sensors, unknown)  # (E', 2), rows of unknown ids dropped
    else:
        pos = _by_position(ends, path, num_sensors)
    cost = _costs(cells["cost"], path) if "cost" in cells else pd.Series(1.0, index=cells.index)
    pos = pos[pos["from"] != pos["to"]]  # self-loops dropped, as a matrix's diagonal is
    return edge_frame(pos["from"], pos["to"], cost.loc[pos.index])


def _first(mask: pd.DataFrame) -> tuple[int, str]:
    """(row position, column name) of the first True cell, row by row."""
    r, c = np.argwhere(mask.to_numpy())[0]
    return int(r), str(mask.columns[c])


def _edge_mode(ends: pd.DataFrame, path: Path, sensors, by: str) -> str:
    """'id' or 'position': how the edge list names sensors (auto: ids when any end is one of the data's ids)."""
    if by not in ("auto", "id", "position"):  # DataConfig checks data.edges_by; this is for direct callers
        raise ValueError(f"edges_by must be one of auto, id, position, got {by!r}")
    if by == "id" and sensors is None:
        raise ValueError(f"{path}: edges_by=id, but the data file names no sensors (no header with sensor ids)")
    if by != "auto":
        return by
    if sensors is None:
        return "position"
    known = {norm_id(s) for s in sensors}
    if ends.map(norm_id).isin(list(known)).to_numpy().any():
        return "id"
    as_int = ends.apply(pd.to_numeric, errors="coerce")
    positions = as_int.notna().to_numpy().all() and (as_int == as_int.round()).to_numpy().all()
    return "position" if positions else "id"


def _by_id(ends: pd.DataFrame, path: Path, sensors, unknown: str) -> pd.DataFrame:
    """Sensor ids -> positions; unknown ids are an error naming the first, or their rows are dropped."""
    lookup = {norm_id(s): i for i, s in enumerate(sensors)}
    ids = ends.map(norm_id)
    known = ids.isin(list(lookup))
    if unknown == "error" and not known.to_numpy().all():
        r, c = _first(~known)
        missing = sorted(set(ids.to_numpy()[~known.to_numpy()]))
        raise ValueError(
            f"{path}: data row {r + 1}, column '{c}': sensor ids not in the id list: {_ids(missing)} "
            f"({len(missing)} unknown; the data names {len(sensors)} sensors: {_ids(sensors)})"
        )
    ids = ids[known.all(axis=1)]
    return ids.apply(lambda col: col.map(lookup))


def _by_position(ends: pd.DataFrame, path: Path, num_sensors: int) -> pd.DataFrame:
    """Positions 0..N-1 written as numbers -> int positions; text or out-of-range values are errors."""
    num = ends.apply(pd.to_numeric, errors="coerce")  # (E, 2) float, NaN for text
    for c in ("from", "to"):
        if num[c].isna().any():
            row, val = first_non_numeric(ends[c])
            raise ValueError(
                f"{path}: column '{c}' must be numeric; data row {row + 1} holds {val!r} (without "
                "sensor ids in the data file, edges name sensors by position 0..N-1)"
            )
    bad = (num < 0) | (num >= num_sensors) | (num != num.round())
    if bad.to_numpy().any():
        r, c = _first(bad)
        values = sorted(set(num.to_numpy()[bad.to_numpy()].tolist()))
        raise ValueError(
            f"{path}: data row {r + 1}, column '{c}': sensor ids out of range 0..{num_sensors - 1}: "
            f"[{', '.join(f'{v:g}' for v in values[:5])}]"
        )
    return num.astype(np.int64)


def _costs(col: pd.Series, path: Path) -> pd.Series:
    """The cost column as floats; text, inf and negative costs are errors naming the row."""
    cost = pd.to_numeric(col, errors="coerce")
    if cost.isna().any():
        row, val = first_non_numeric(col)
        raise ValueError(f"{path}: column 'cost' must be numeric; data row {row + 1} holds {val!r}")
    inf = np.flatnonzero(~np.isfinite(cost.to_numpy(np.float64)))
    if len(inf):
        raise ValueError(f"{path}: data row {inf[0] + 1}: column 'cost' has inf values")
    if (neg := np.flatnonzero(cost.to_numpy(np.float64) < 0)).size:
        raise ValueError(
            f"{path}: data row {neg[0] + 1}: column 'cost' is negative ({cost.iloc[neg[0]]:g}): a cost is a distance "
            f"or a weight, >= 0 ({len(neg)} negative rows)"
        )
    return cost.astype(np.float64)


def matrix_edges(mat: np.ndarray, path: Path, num_sensors: int) -> pd.DataFrame:
    """A dense (N, N) adjacency -> from/to/cost rows of its nonzero off-diagonal entries."""
    if not np.issubdtype(mat.dtype, np.number):
        raise ValueError(f"{path}: adjacency matrix must be numeric, got dtype {mat.dtype}")
    if mat.shape != (num_sensors, num_sensors):
        n = num_sensors
        raise ValueError(f"{path}: adjacency matrix must be ({n}, {n}) for {n} sensors, got {mat.shape}")
    bad = ~np.isfinite(mat)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{path}: row {r}, column {c}: adjacency matrix has NaN/inf entries ({int(bad.sum())})")
    if (neg := mat < 0).any():
        r, c = np.argwhere(neg)[0]
        raise ValueError(
            f"{path}: row {r}, column {c}: adjacency matrix has negative entries ({int(neg.sum())}, the first "
            f"{mat[r, c]:g}): a weight or distance is >= 0"
        )
    src, dst = np.nonzero(mat)
    src, dst = src[src != dst], dst[src != dst]
    return edge_frame(src, dst, mat[src, dst])


def _labelled_matrix_csv(path: Path, kw: dict) -> tuple[list[str], np.ndarray]:
    """(ids, (N, N) matrix) of a CSV whose header names the sensors, optionally with a first column of ids; kw: the
    separator, encoding and lines to skip; with ';' or tab the decimal mark may be ','."""
    df = read_csv(path, **kw)
    if kw["sep"] != "," and not all(map(pd.api.types.is_numeric_dtype, df.dtypes.iloc[1:])):
        df = read_csv(path, decimal=",", **kw)
    first = str(df.columns[0]).strip().lower()
    indexed = first == "" or first.startswith("unnamed:") or df.shape[1] == df.shape[0] + 1
    if indexed:
        df = df.set_index(df.columns[0])
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            row, val = first_non_numeric(df[c])
            raise ValueError(
                f"{path}: neither an edge list with columns from,to[,cost] nor a numeric adjacency "
                f"matrix: data row {row + 1}, column '{c}' holds {val!r}"
            )
    ids = [norm_id(c) for c in df.columns]
    if indexed and [norm_id(i) for i in df.index] != ids:
        raise ValueError(f"{path}: the row labels {_ids(df.index)} differ from the column labels {_ids(ids)}")
    return ids, df.to_numpy(dtype=np.float64)


def labelled_matrix_edges(
    ids: list[str], mat: np.ndarray, path: Path, num_sensors: int, sensors, unknown: str
) -> pd.DataFrame:
    """A matrix whose rows and columns are sensor ids -> edges in the data's sensor order."""
    if mat.ndim != 2 or mat.shape != (len(ids), len(ids)):
        raise ValueError(f"{path}: adjacency matrix of shape {mat.shape} for {len(ids)} sensor ids")
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise ValueError(f"{path}: sensor id '{dup}' names two rows and columns")
    if sensors is None:  # the data names no sensors: the file's order is the data's
        return matrix_edges(mat, path, num_sensors)
    pos = {s: i for i, s in enumerate(ids)}
    wanted = [norm_id(s) for s in sensors]
    absent = [s for s in wanted if s not in pos]
    if absent:
        raise ValueError(f"{path}: no row and column for {len(absent)} sensor ids of the data: {_ids(absent)}")
    extra = sorted(set(ids) - set(wanted))
    if extra and unknown == "error":
        raise ValueError(f"{path}: rows and columns of sensor ids not in the data: {_ids(extra)} ({len(extra)})")
    order = [pos[s] for s in wanted]
    return matrix_edges(mat[np.ix_(order, order)], path, num_sensors)


# DCRNN's adj_mx.pkl: [sensor_ids, {sensor_id: index}, (N, N) float32 adjacency]
class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed few."""


def _allowed_globals() -> dict:
    """(module, name) -> object: numpy array reconstruction (numpy 1 and 2 names), bytes at protocol 2 (_codecs)."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for pkg in ("numpy.core", "numpy._core"):
        allowed[f"{pkg}.multiarray", "_reconstruct"] = multiarray._reconstruct
        allowed[f"{pkg}.numeric", "_frombuffer"] = numeric._frombuffer  # arrays at protocol 5
    return allowed


class AdjacencyUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module, name):
        if (found := _allowed_globals().get((module, name))) is None:
            raise RefusedGlobal(f"{module}.{name}")
        return found


def read_adj_pickle(path: Path) -> tuple[list[str], np.ndarray]:
    """(sensor ids, (N, N) float64 adjacency) of a DCRNN adj_mx.pkl, read by the restricted unpickler."""
    obj = _unpickle(Path(path))
    if not (isinstance(obj, (list, tuple)) and len(obj) == 3):
        what = f"{type(obj).__name__} of {len(obj)}" if isinstance(obj, (list, tuple)) else type(obj).__name__
        raise ValueError(
            f"{path}: expected DCRNN's adjacency pickle [sensor_ids, {{id: index}}, N x N matrix], got a {what}"
        )
    ids, index, mat = obj
    ids = [norm_id(i.decode("latin1") if isinstance(i, bytes) else i) for i in ids]
    mat = np.asarray(mat)
    if not np.issubdtype(mat.dtype, np.number) or mat.shape != (len(ids), len(ids)):
        n = len(ids)
        raise ValueError(
            f"{path}: the adjacency must be a numeric ({n}, {n}) array for {n} sensor ids, got {mat.dtype} {mat.shape}"
        )
    if isinstance(index, dict):
        index = {norm_id(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in index.items()}
        wrong = [s for i, s in enumerate(ids) if index.get(s) != i]
        if wrong:
            raise ValueError(
                f"{path}: the id -> index dict disagrees with the id list at sensor '{wrong[0]}' "
                f"(list position {ids.index(wrong[0])}, dict {index.get(wrong[0])})"
            )
    return ids, mat.astype(np.float64)


def _unpickle(path: Path):
    """Load with the restricted unpickler; Python 2 pickles (DCRNN's) need encoding latin1 for array bytes."""
    data = path.read_bytes()
    for encoding in ("ASCII", "latin1"):
        try:
            return AdjacencyUnpickler(io.BytesIO(data), encoding=encoding).load()
        except RefusedGlobal as e:
            raise ValueError(
                f"{path}: refused to unpickle global '{e}': an adjacency pickle holds only a list of sensor ids, "
                "a dict and a numpy array (a pickle can run code, so nothing else is loaded)"
            ) from None
        except UnicodeDecodeError:
            continue  # Python 2 str holding array bytes: retry as latin1
        except Exception as e:  # noqa: BLE001  truncated or foreign bytes raise many kinds of errors
            raise ValueError(
                f"{path}: not a readable pickle (corrupt or truncated?): {type(e).__name__}: {e}"
            ) from None
    raise ValueError(f"{path}: not a readable pickle: its strings decode neither as ASCII nor as latin1")
