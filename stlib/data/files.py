"""Series files (CSV, .npz/.npy, pandas HDF5 as DCRNN's) read into one validated array.

`read_series(path)` -> `SeriesFile` (values with NaN for missing readings, timestamps and sensor ids when the file
names them); `clean_values` -> the float32 (T, N, C) series with missing readings 0 (masked in loss and metrics);
`regular_times` reads the calendar off the timestamps. Each error is one ValueError naming file, row and column.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"  # first bytes of an .npy and of an .npz (a zip archive)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "")  # names of a leading time column in a CSV
# the cell texts a CSV reader takes as a missing reading (exactly, case as written; docs/data.md); any other text
# in a sensor column is an error naming its row and column
MISSING_TOKENS = ("", "NA", "N/A", "n/a", "#N/A", "NaN", "nan", "NULL", "null", "None")
MISSING_HINT = (
    "mark a missing reading with an empty cell, one of "
    + " ".join(t for t in MISSING_TOKENS if t)
    + " or data.missing_value"
)
NUMBER_HINT = (
    "write numbers with one decimal mark ('.', or ',' when ';' or tab separates the fields) and no thousands "
    "separators; " + MISSING_HINT
)
SEPARATORS = {",": "','", ";": "';'", "\t": "tab"}  # the field separators a CSV may use
SNIFF_LINES = 50  # the first lines that decide the separator and the header


@dataclass
class SeriesFile:
    """A series as a file holds it, before validation."""

    path: Path
    values: np.ndarray  # (T, N, C) float64, NaN where the file has no reading
    times: pd.DatetimeIndex | None = None  # (T,) when the file has a time column or index
    sensors: list[str] | None = None  # (N,) ids when the file names its sensors (a header, HDF5 columns)
    csv: bool = False  # rows are counted as "data row k", 1-based below the header
    time_label: str = "time"  # the time column's name (CSV) or "index" (HDF5)
    dropped_columns: int = 0  # CSV columns without a name (or, without a header, trailing) and with no reading
    dropped_rows: int = 0  # CSV rows at the end with every cell empty
    time_zone: str = ""  # how timestamps with UTC offsets were read ("" = as written)
    missing_tokens: dict[str, int] | None = None  # a CSV's missing-reading cells by their text ("" = empty)

    def row(self, t: int) -> str:
        return f"data row {t + 1}" if self.csv else f"step {t}"

    def at(self, t: int, n: int, c: int = 0) -> str:
        """'<file>: data row 5 (2024-01-01 00:20:00), column 's3'': where a value error points."""
        when = f" ({self.times[t]})" if self.times is not None else ""
        column = f"column '{self.sensors[n]}'" if self.sensors else f"sensor {n}"
        return f"{self.path}: {self.row(t)}{when}, {column}" + (f", channel {c}" if self.values.shape[2] > 1 else "")


def read_series(path: Path) -> SeriesFile:
    """A .npz/.npy (T, N[, C]) array, a CSV (rows = time steps, columns = sensors) or a pandas HDF5 table."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return SeriesFile(path, as_3d(read_npz(path), path))
    if suffix == ".csv":
        return read_wide_csv(path)
    if suffix in HDF5_SUFFIXES:
        return read_hdf(path)
    raise ValueError(f"{path}: unsupported file type '{path.suffix}' (use .csv, .npz, .npy or .h5)")


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
            if found := [k for k in keys if k in z.files]:
                return z[found[0]]
            names = z.files
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable numeric numpy file (corrupt or truncated?): {e}") from None
    wanted = " or ".join(f"'{k}'" for k in keys)
    raise ValueError(f"{path}: no array named {wanted} (found: {', '.join(names) or 'none'})")


def as_3d(arr, path: Path) -> np.ndarray:
    """A numeric (T, N) or (T, N, C) array -> float64 (T, N, C); ValueError naming the file otherwise."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{path}: expected numeric values, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected shape (T, N) or (T, N, C), got {arr.shape} (rank {arr.ndim})")
    if min(arr.shape) == 0:
        raise ValueError(f"{path}: empty array of shape {arr.shape}")
    return arr.astype(np.float64)


def read_csv(path: Path, **kw) -> pd.DataFrame:
    """pd.read_csv with one ValueError naming the file for anything unreadable."""
    try:
        return pd.read_csv(path, **kw)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{path}: malformed CSV: {str(e).strip()}") from None


def first_non_numeric(col: pd.Series) -> tuple[int, object]:
    """(row position, value) of the first non-empty cell of col that is not a number."""
    bad = (pd.to_numeric(col, errors="coerce").isna() & col.notna()).to_numpy()
    i = int(np.argmax(bad)) if bad.any() else 0
    return i, col.iloc[i]


def read_wide_csv(path: Path) -> SeriesFile:
    """Rows = time steps, columns = sensors (ids in the header), an optional leading time column; a first line of
    decimal numbers is data (no header: sensors by position); empty cells are missing readings. The field separator
    (',' ';' tab, or Excel's 'sep=;' first line) and, with ';' or tab, the decimal mark ('.' or ',') are detected."""
    encoding, sep, skip, rows = sniff_csv(path)
    header = csv_has_header(rows[0], sep) if rows else True
    if header and len(rows) == 1:
        raise ValueError(f"{path}: no data rows (expected rows = time steps, columns = sensors)")
    width = max(map(len, rows), default=0)  # a short row's missing cells are missing readings
    kw = dict(sep=sep, header=None, skiprows=skip + header, encoding=encoding)
    kw.update(dict(names=range(width), index_col=False) if width else {})
    raw = read_csv(path, dtype=str, na_filter=False, **kw)  # the cells as written, for the missing tokens' count
    kw.update(na_values=list(MISSING_TOKENS), keep_default_na=False)
    df = read_csv(path, **kw)
    if sep != "," and not all(map(pd.api.types.is_numeric_dtype, df.dtypes.iloc[1:])):
        comma = read_csv(path, decimal=",", **kw)  # a European file: 1,5 for 1.5
        if _numeric_columns(comma) > _numeric_columns(df):
            df = comma
    df, kept = _name_columns(df, [v.strip() for v in rows[0]] if header else None, path)
    dropped = raw.shape[1] - len(kept)
    filled = np.flatnonzero(df.notna().any(axis=1).to_numpy())
    if len(filled) == 0:
        raise ValueError(f"{path}: no data rows (expected rows = time steps, columns = sensors)")
    empty_rows, df = len(df) - filled[-1] - 1, df.iloc[: filled[-1] + 1]  # rows of empty cells at the end (Excel)
    times, time_label, zone = None, "time", ""
    if is_time_column(df.iloc[:, 0], df.columns[0] if header else "1"):
        time_label = str(df.columns[0]) if header else "1"
        times, zone = parse_times(df.iloc[:, 0], path, time_label, with_zone=True)
        df, kept = df.iloc[:, 1:], kept[1:]
    if df.shape[1] == 0:
        raise ValueError(f"{path}: no sensor columns besides the time column")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        row, val = first_non_numeric(df[bad[0]])
        hint = NUMBER_HINT if any(ch.isdigit() for ch in str(val)) else MISSING_HINT
        raise ValueError(f"{path}: non-numeric value {val!r} in column '{bad[0]}' (data row {row + 1}); " + hint)
    sensors = list(df.columns) if header else None
    values = df.to_numpy(dtype=np.float64)[:, :, None]
    cells = pd.Series(raw.iloc[: len(df), kept].fillna("").to_numpy().ravel())  # a short row's cells: empty
    tokens = cells[cells.isin(MISSING_TOKENS)].value_counts()
    kw = dict(csv=True, time_label=time_label, dropped_columns=dropped, dropped_rows=int(empty_rows), time_zone=zone)
    kw["missing_tokens"] = {t or "(empty)": int(tokens[t]) for t in MISSING_TOKENS if t in tokens}
    return SeriesFile(path, values, times, sensors, **kw)


def _numeric_columns(df: pd.DataFrame) -> int:
    return sum(map(pd.api.types.is_numeric_dtype, df.dtypes))


def sniff_csv(path: Path) -> tuple[str, str, int, list[list[str]]]:
    """(encoding, field separator, lines before the header (Excel's 'sep=;'), the first rows split by it). The
    separator is the one of ',' ';' tab that splits each of the first lines into several fields; if several do, the
    one that splits them into equally many, then the one whose cells read as numbers; a tie is an error."""
    with open(path, "rb") as f:
        encoding = "utf-16" if f.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        with open(path, encoding=encoding, newline="") as f:
            lines = list(itertools.islice(f, SNIFF_LINES))
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: malformed CSV: not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r}): "
            "save it as UTF-8 ('CSV UTF-8' in a spreadsheet)"
        ) from None
    hint = lines[0].strip() if lines else ""
    if hint.lower().startswith("sep=") and len(hint) == 5:  # Excel's hint line, e.g. 'sep=;'
        return encoding, hint[4], 1, [r for r in csv.reader(lines[1:], delimiter=hint[4]) if r]
    split = {s: [r for r in csv.reader(lines, delimiter=s) if r] for s in SEPARATORS}
    fits = [s for s, rs in split.items() if rs and min(map(len, rs)) > 1]
    if len(fits) > 1:  # rows of equal length first (a row may lack its last cells or end in a separator)
        fits = [s for s in fits if len(set(map(len, split[s]))) == 1] or fits
    if len(fits) > 1:
        score = {s: _numeric_share(split[s][1:], s) for s in fits}
        fits = [s for s in fits if score[s] == max(score.values())]
        if len(fits) > 1:
            names = " and ".join(SEPARATORS[s] for s in fits)
            raise ValueError(f"{path}: ambiguous CSV: the first lines split evenly by {names}; use one separator")
    sep = fits[0] if fits else ","  # one column
    return encoding, sep, 0, split[sep]


def _numeric_share(rows: list[list[str]], sep: str) -> float:
    """Share of the cells of rows (the first field of each left out: a time column) that are numbers or empty."""
    cells = [v.strip() for r in rows for v in r[1:]]
    return sum(v == "" or as_number(v, sep) is not None for v in cells) / max(len(cells), 1)


def _name_columns(df: pd.DataFrame, names: list[str] | None, path: Path) -> tuple[pd.DataFrame, list[int]]:
    """(df with the header's names, the positions of the columns kept): a column without a name whose cells are all
    empty (a
    trailing separator, a spacer column) is dropped; one with readings, or a repeated name, is an error. Without a
    header, columns are named by position from 1 and trailing all-empty columns are dropped."""
    empty = df.isna().all().to_numpy()
    if names is None:
        keep = len(df.columns) - int(np.argmin(empty[::-1])) if not empty.all() else len(df.columns)
        out = df.iloc[:, :keep]
        return out.set_axis([str(i + 1) for i in range(keep)], axis=1), list(range(keep))
    m = len(df.columns)
    names = (names + [""] * m)[:m]
    unnamed = [i for i in range(1, m) if not names[i]]
    if with_data := [i for i in unnamed if not empty[i]]:
        raise ValueError(
            f"{path}: column {with_data[0] + 1} has readings but no sensor id in the header: "
            "name it in the header or delete it"
        )
    keep = [i for i in range(m) if i not in unnamed]
    first = {}
    for i in keep:
        if (j := first.setdefault(names[i], i)) != i:
            raise ValueError(
                f"{path}: columns {j + 1} and {i + 1} of the header both name sensor '{names[i]}': "
                "sensor ids must be unique"
            )
    return df.iloc[:, keep].set_axis([names[i] for i in keep], axis=1), keep


def csv_has_header(fields: list[str], sep: str = ",") -> bool:
    """False when the first line (after an optional timestamp) is all numbers, some written as decimals: sensor
    names may be integers (ids), so a first line of plain integers counts as a header."""
    fields = [v.strip() for v in fields]
    if fields and is_timestamp(fields[0]):
        fields = fields[1:]
    fields = [v for v in fields if v]  # a trailing separator
    numeric = bool(fields) and all(as_number(v, sep) is not None for v in fields)
    return not (numeric and any(c in v for v in fields for c in ".,eE"))


def as_number(text: str, sep: str = ",") -> float | None:
    """float(text), with ',' read as the decimal mark too when fields are separated by ';' or tab; None otherwise."""
    return as_float(text) if sep == "," or text.count(",") > 1 else as_float(text.replace(",", "."))


def as_float(text: str) -> float | None:
    """float(text), or None when text is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def is_timestamp(text: str) -> bool:
    """True for a date/time string such as '2024-01-01 00:05' (not a plain number)."""
    if as_float(text) is not None:
        return False
    try:
        return pd.Timestamp(text) is not pd.NaT
    except (ValueError, TypeError):
        return False


def is_time_column(col: pd.Series, name) -> bool:
    """A leading time column: named time/timestamp/date/datetime (or unnamed, an index), or holding timestamps."""
    label = str(name).strip().lower()
    if label in TIME_COLUMNS or label.startswith("unnamed:"):
        return True
    if pd.api.types.is_numeric_dtype(col):
        return False
    head = col.dropna().head(5).astype(str)
    return len(head) > 0 and all(is_timestamp(v) for v in head)


def parse_times(col: pd.Series, path: Path, label: str, with_zone: bool = False):
    """A time column -> DatetimeIndex (wall-clock time; one timezone is dropped; UTC offsets that change, as across
    a daylight-saving switch, are read as UTC), with_zone: and how ("" or a note for info); the first bad cell named."""
    where, zone = f"{path}: column '{label}'", ""
    if pd.api.types.is_numeric_dtype(col):
        raise ValueError(
            f"{where} holds numbers ({col.iloc[0]!r} in data row 1), not timestamps: write times like 2024-01-01 00:05"
        )
    try:
        times = pd.DatetimeIndex(pd.to_datetime(col, errors="coerce"))
    except (ValueError, TypeError):  # offsets that change (a daylight-saving switch): one zone, UTC
        try:
            times = pd.DatetimeIndex(pd.to_datetime(col, errors="coerce", utc=True))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: cannot read the timestamps: {e}") from None
        offsets = sorted(set(col.astype(str).str.extract(r"([+-]\d\d:?\d\d|Z)$")[0].dropna()))
        zone = f"UTC (the file's offsets {', '.join(offsets)} change)"
    bad = np.flatnonzero(times.isna())
    if len(bad):
        raise ValueError(f"{path}: data row {bad[0] + 1}, column '{label}': {col.iloc[bad[0]]!r} is not a timestamp")
    return (_naive(times), zone) if with_zone else _naive(times)


def _naive(times) -> pd.DatetimeIndex:
    """Wall-clock time: a timezone is dropped."""
    times = pd.DatetimeIndex(times)
    return times.tz_localize(None) if times.tz is not None else times


def read_hdf(path: Path) -> SeriesFile:
    """A pandas HDF5 table: rows = time steps (a DatetimeIndex is the calendar), columns = sensor ids."""
    df = _hdf_frame(path)
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        row, val = first_non_numeric(df[bad[0]].astype(object))
        raise ValueError(f"{path}: row {row}, column '{bad[0]}': non-numeric value {val!r}")
    times = _naive(df.index) if isinstance(df.index, pd.DatetimeIndex) else None
    sensors = [str(c).strip() for c in df.columns]
    return SeriesFile(path, as_3d(df.to_numpy(dtype=np.float64), path), times, sensors, time_label="index")


def _hdf_frame(path: Path) -> pd.DataFrame:
    """The one table of a pandas HDF5 file (key 'df' when there are several), as a DataFrame."""
    try:
        import tables
    except ImportError:
        raise ValueError(f"{path}: reading HDF5 needs the 'tables' package (pip install tables)") from None
    if not tables.is_hdf5_file(str(path)):
        raise ValueError(f"{path}: not an HDF5 file (corrupt or truncated?)")
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            key = "/df" if "/df" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise ValueError(
                    f"{path}: {len(keys)} tables ({', '.join(keys) or 'none'}); expected one "
                    "pandas table (DCRNN's files hold one, under the key 'df')"
                )
            obj = store[key]
    except (OSError, TypeError, KeyError, tables.HDF5ExtError, tables.NoSuchNodeError) as e:
        raise ValueError(f"{path}: not a readable pandas HDF5 table (corrupt or truncated?): {e}") from None
    df = obj.to_frame() if isinstance(obj, pd.Series) else obj
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError(f"{path}: table '{key}' holds no rows of sensor columns")
    return df


def clean_values(sf: SeriesFile, min_steps: int, missing_value: float | None = None) -> tuple[np.ndarray, int]:
    """(float32 (T, N, C) series with missing readings 0, count of missing cells in channel 0); missing: NaN (an
    empty cell) or `missing_value`. Infinite and negative values are errors."""
    v = sf.values
    missing = np.isnan(v)
    if missing_value is not None:
        missing |= v == missing_value
    _refuse(sf, np.isinf(v), "infinite value", "")
    big = np.finfo(np.float32).max
    _refuse(sf, np.abs(v) > big, "value too large", f" for float32 (at most {big:.3g}): check the file's units")
    _refuse(sf, (v < 0) & ~missing, "negative value", f"; values must be >= 0 ({MISSING_HINT})")
    if v.shape[0] < min_steps:
        raise ValueError(
            f"{sf.path}: series of {v.shape[0]} steps is too short: at least {min_steps} steps are "
            "needed so that train, val and test each get windows of in_steps + out_steps steps"
        )
    return np.where(missing, 0.0, v).astype(np.float32), int(missing[:, :, 0].sum())


def _refuse(sf: SeriesFile, bad: np.ndarray, what: str, hint: str) -> None:
    """Raise naming the first (row-major) True cell of bad, its value and how many there are."""
    if bad.any():
        t, n, c = (int(i) for i in np.argwhere(bad)[0])
        k = int(bad.sum())
        raise ValueError(f"{sf.at(t, n, c)}: {what} {sf.values[t, n, c]:g} ({k} such cell{'s' * (k > 1)})" + hint)


def regular_times(sf: SeriesFile, allow_gaps: bool = False) -> tuple[pd.Timestamp, int, int]:
    """(start, interval in minutes, number of gaps) of a file's timestamps. The interval is the most common step, in
    whole minutes dividing a day; a duplicate, a step back, an irregular step or (unless allow_gaps) a gap is an
    error naming its row."""
    t = sf.times
    if len(t) < 2:
        raise ValueError(f"{sf.path}: one timestamp cannot give an interval")
    d = pd.TimedeltaIndex(t[1:] - t[:-1])  # (T-1,)
    step = d.value_counts().idxmax()
    where = lambda i: f"{sf.path}: {sf.row(i + 1)}, column '{sf.time_label}'"  # noqa: E731  the later row of d[i]
    if step <= pd.Timedelta(0):
        raise ValueError(f"{where(0)}: the timestamps do not increase (most steps are {step})")
    gap = np.asarray((d > step) & (d % step == pd.Timedelta(0)))  # (T-1,) whole steps skipped
    bad = np.flatnonzero(np.asarray(d != step) & ~(gap & allow_gaps))
    if len(bad):
        raise ValueError(f"{where(bad[0])}: {_time_problem(t, bad[0], d[bad[0]], step)}")
    minutes = step / pd.Timedelta(minutes=1)
    if minutes != int(minutes) or 1440 % int(minutes):
        raise ValueError(
            f"{sf.path}: the timestamps are {step} apart: the interval must be a whole number of "
            "minutes dividing a day (1, 5, 10, 15, 30, 60, ...)"
        )
    return pd.Timestamp(t[0]), int(minutes), int(gap.sum())


def _time_problem(t: pd.DatetimeIndex, i: int, d: pd.Timedelta, step: pd.Timedelta) -> str:
    """Why the step from t[i] to t[i + 1] (d) breaks the file's interval (step)."""
    if d == pd.Timedelta(0):
        return f"duplicate timestamp {t[i + 1]} (the row before has it too)"
    if d < pd.Timedelta(0):
        return f"timestamp {t[i + 1]} is earlier than the row before ({t[i]}): rows must be in time order"
    if d % step == pd.Timedelta(0):
        return (
            f"gap: {t[i + 1]} follows {t[i]}, {int(d / step) - 1} step(s) of {step} missing; add those rows "
            "with empty cells (missing readings)"
        )
    return f"irregular interval: {t[i + 1]} is {d} after the row before; the file's interval is {step}"
