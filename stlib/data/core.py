"""The dataset object every loader returns, window splits and the z-score scaler."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd


@dataclass
class Dataset:
    """A sensor series with its graph, calendar and window splits. Missing readings are 0 in `series` (the loss and
    the metrics mask targets equal to 0). A window starting at row s has inputs rows s..s+in_steps-1, targets the
    next out_steps rows, and with `lags` each lag L's window too (rows s-L..s-L+in_steps+out_steps-1)."""

    name: str
    series: np.ndarray  # (T, N, C) original units, 0 = missing
    start_time: pd.Timestamp
    interval_minutes: int
    edges: pd.DataFrame  # columns from, to, cost
    splits: dict[str, np.ndarray]  # "train" / "val" / "test" -> window start rows
    in_steps: int = 12
    out_steps: int = 12
    target_channel: int = 0
    source: str = "generated"
    sensor_ids: list[str] | None = None  # (N,) ids when the data names its sensors, else positions
    value_name: str = "flow"  # what the target measures, for labels: flow, speed, ...
    unit: str = ""  # its unit: "vehicles/5 min", "mph", ... ("" = unknown)
    times: pd.DatetimeIndex | None = None  # (T,) real timestamps where they are not start + k * interval (gaps)
    marked_missing: int = 0  # target cells the file marked missing (empty, NaN, missing_value), now 0
    dropped_columns: int = 0  # a CSV's unnamed all-empty columns (a trailing separator), dropped
    dropped_rows: int = 0  # a CSV's all-empty rows at its end, dropped
    time_zone: str = ""  # how the file's timestamps were read, when they carried changing UTC offsets
    missing_tokens: dict[str, int] | None = None  # a CSV's missing-reading cells by their text (files.MISSING_TOKENS)
    lags: tuple[int, ...] = ()  # more input: each window's own rows this many steps back (data.lags)

    @property
    def num_steps(self) -> int:
        return self.series.shape[0]

    @property
    def num_sensors(self) -> int:
        return self.series.shape[1]

    @property
    def steps_per_day(self) -> int:
        return 1440 // self.interval_minutes

    @property
    def sensors(self) -> list[str]:
        """(N,) sensor ids, or positions as text when the data names none."""
        return list(self.sensor_ids) if self.sensor_ids is not None else [str(i) for i in range(self.num_sensors)]

    @property
    def value_label(self) -> str:
        """'speed (mph)': the target's name and unit for axis labels."""
        return f"{self.value_name} ({self.unit})" if self.unit else self.value_name

    @cached_property
    def timestamps(self) -> pd.DatetimeIndex:
        if self.times is not None:
            return pd.DatetimeIndex(self.times)
        return pd.date_range(self.start_time, periods=self.num_steps, freq=f"{self.interval_minutes}min")

    @property
    def time_gaps(self) -> int:
        """How many times consecutive rows are more than one interval apart (0 unless `times` is set)."""
        ts = self.timestamps
        return 0 if self.times is None else int((ts[1:] - ts[:-1] > pd.Timedelta(minutes=self.interval_minutes)).sum())

    @cached_property
    def time_of_day(self) -> np.ndarray:
        """(T,) slot of the day, 0..steps_per_day-1, from the real timestamps."""
        return self.slots(self.timestamps)

    def slots(self, ts: pd.DatetimeIndex) -> np.ndarray:
        """The slot of the day (0..steps_per_day-1) of each timestamp."""
        return ((ts.hour * 60 + ts.minute) // self.interval_minutes).to_numpy().astype(np.int64)

    @cached_property
    def day_of_week(self) -> np.ndarray:
        """(T,) 0 = Monday .. 6 = Sunday, from the real calendar."""
        return self.timestamps.day_of_week.to_numpy().astype(np.int64)

    @property
    def window(self) -> int:
        return self.in_steps + self.out_steps

    @property
    def train_rows(self) -> slice:
        """Rows touched by training windows (inputs and targets): the only rows statistics may use."""
        starts = self.splits["train"]
        return slice(int(starts.min()), int(starts.max()) + self.window)

    @property
    def input_steps(self) -> int:
        """Steps of a window's input: each lag's whole window, then the last in_steps rows."""
        return len(self.lags) * self.window + self.in_steps

    def input_offsets(self) -> np.ndarray:
        """(input_steps,) the rows a window starting at s reads, relative to s: each lag L's window (s-L..s-L+window-1,
        all before the first target as L >= out_steps), then s..s+in_steps-1."""
        return np.concatenate([np.arange(self.window) - lag for lag in self.lags] + [np.arange(self.in_steps)])

    def with_lags(self, lags) -> Dataset:
        """The same data, each window reading its own rows `lags` steps back as well (data.lags)."""
        lags = tuple(int(v) for v in lags)
        if min(lags) < self.out_steps or len(set(lags)) < len(lags):
            raise ValueError(
                f"data.lags {list(lags)}: each lag must appear once and be at least data.out_steps ({self.out_steps}) "
                "steps, so that a window reads only rows before its first target"
            )
        return replace(self, lags=lags)

    def context_missing(self, split: str) -> int:
        """Windows of a split whose lagged rows start before row 0: that part reads as missing (the z-score of 0)."""
        return int((self.splits[split] < max(self.lags, default=0)).sum())

    def padded_features(self) -> tuple[np.ndarray, int]:
        """((pad + T, N, 3) features, pad): max(lags) rows in front of features(), missing (the z-score of 0) at
        the times of day and weekdays they would have, for the lagged rows of the first windows."""
        feats, pad = self.features(), max(self.lags, default=0)
        if not pad:
            return feats, 0
        step = f"{self.interval_minutes}min"
        ts = pd.date_range(end=self.timestamps[0] - pd.Timedelta(step), periods=pad, freq=step)
        front = np.empty((pad, self.num_sensors, 3), dtype=np.float32)
        front[..., 0] = self.normalize(0.0)
        front[..., 1] = (self.slots(ts) / self.steps_per_day)[:, None]
        front[..., 2] = ts.day_of_week.to_numpy()[:, None]
        return np.concatenate([front, feats]), pad

    def last_training_days(self, days: float) -> Dataset:
        """The same data with only the training windows inside the last `days` days of the training rows (inputs
        and targets); the statistics follow, from those rows only. Validation and test windows are unchanged."""
        rows, starts = self.train_rows, self.splits["train"]
        first = rows.stop - round(days * self.steps_per_day)
        keep = starts[starts >= first]
        if first < rows.start or not len(keep):
            have = (rows.stop - rows.start) / self.steps_per_day
            raise ValueError(
                f"data.train_days {days:g}: {self.source}'s training part holds {have:.2f} days "
                f"({len(starts)} windows); give at most that, at least {self.window / self.steps_per_day:.2f}, "
                "or leave it unset for all"
            )
        return replace(self, splits={**self.splits, "train": keep})

    @cached_property
    def mean(self) -> float:
        """Mean of the target over the training rows, accumulated in float64."""
        return float(self.target[self.train_rows].mean(dtype=np.float64))

    @cached_property
    def std(self) -> float:
        """Standard deviation (ddof 0) of the target over the training rows, in float64."""
        return float(self.target[self.train_rows].std(dtype=np.float64))

    @property
    def target(self) -> np.ndarray:
        """(T, N) the forecast channel in original units."""
        return self.series[:, :, self.target_channel]

    def normalize(self, x):
        return (x - self.mean) / self.std

    def denormalize(self, z):
        return z * self.std + self.mean

    def features(self) -> np.ndarray:
        """(T, N, 3) float32 model inputs per row: z-scored target, time of day in [0, 1), day of week."""
        if not self.std > 0:
            raise ValueError(
                f"{self.source}: the training rows {self.train_rows.start}..{self.train_rows.stop - 1} "
                f"of channel {self.target_channel} are constant (std 0): cannot z-score"
            )
        out = np.empty((self.num_steps, self.num_sensors, 3), dtype=np.float32)
        out[:, :, 0] = self.normalize(self.target)
        out[:, :, 1] = (self.time_of_day / self.steps_per_day)[:, None]
        out[:, :, 2] = self.day_of_week[:, None]
        return out

    @cached_property
    def fingerprint(self) -> dict:
        """What a run trained on, for its record (data.json): content hashes of the values and of the sensor ids and
        timestamps, the shape, the first ids and the calendar; compare() says what differs from another."""
        digest = lambda b: hashlib.sha256(b).hexdigest()[:16]  # noqa: E731
        return {
            "shape": list(self.series.shape),
            "values_sha256": digest(np.ascontiguousarray(self.series, dtype=np.float64).tobytes()),
            "sensor_ids_sha256": digest("\n".join(self.sensors).encode()),
            "first_ids": self.sensors[:5],
            "start": str(self.timestamps[0]),
            "end": str(self.timestamps[-1]),
            "times_sha256": digest(self.timestamps.asi8.tobytes()),
        }

    def summary(self) -> dict:
        """A JSON-able overview: shape, time span, windows per split, missing share, statistics."""
        cells, missing = self.num_steps * self.num_sensors, int((self.target == 0).sum())
        return {
            "name": self.name,
            "source": self.source,
            "shape": list(self.series.shape),
            "sensors": self.num_sensors,
            "edges": int(len(self.edges)),
            "sensor_ids": self.sensor_ids[:5] + ["..."] * (self.num_sensors > 5) if self.sensor_ids else None,
            "value_name": self.value_name,
            "unit": self.unit,
            "interval_minutes": self.interval_minutes,
            "start": str(self.start_time),
            "end": str(self.timestamps[-1]),
            "time_gaps": self.time_gaps,
            "days": round(self.num_steps / self.steps_per_day, 2),
            "in_steps": self.in_steps,
            "out_steps": self.out_steps,
            "lags": list(self.lags),
            "input_steps": self.input_steps,
            "windows_context_missing": {k: self.context_missing(k) for k in self.splits} if self.lags else None,
            "windows": {k: int(len(v)) for k, v in self.splits.items()},
            "first_window": {k: int(v[0]) for k, v in self.splits.items() if len(v)},
            "missing_cells": missing,  # every masked target cell (stored as 0)
            "missing_share": round(missing / cells, 6),
            "marked_missing_cells": self.marked_missing,  # of those, the cells the file marked missing
            "marked_missing_share": round(self.marked_missing / cells, 6),
            "missing_tokens": self.missing_tokens,  # a CSV's marked cells by their text, e.g. {"(empty)": 3, "NA": 1}
            "dropped_empty_columns": self.dropped_columns,  # a CSV's unnamed all-empty columns
            "dropped_empty_rows": self.dropped_rows,  # a CSV's all-empty rows at its end
            "time_zone": self.time_zone or "as written",
            "train_rows": [self.train_rows.start, self.train_rows.stop - 1],
            "train_mean": finite(round(self.mean, 4)),
            "train_std": finite(round(self.std, 4)),
            "min": finite(self.target.min()),
            "max": finite(self.target.max()),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return f"Dataset({json.dumps({k: s[k] for k in ('name', 'shape', 'start', 'windows')})})"


def finite(x) -> float | None:
    """float(x), or None (JSON null) when it is NaN or infinite: the summary stays strict JSON."""
    return float(x) if np.isfinite(x) else None


def chronological_splits(num_steps: int, window: int, ratios=(0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
    """Standard chronological split of all window starts by ratios (as STSGCN/ASTGCN/BasicTS do)."""
    if len(ratios := tuple(ratios)) != 3 or not all(np.isfinite(r) and r > 0 for r in ratios):
        raise ValueError(f"split must be three positive ratios (train, val, test), got {list(ratios)}")
    n = num_steps - window + 1
    if n < 3:
        raise ValueError(f"series of {num_steps} steps is too short for windows of {window} steps")
    total = float(sum(ratios))
    a, b = int(n * ratios[0] / total), int(n * (ratios[0] + ratios[1]) / total)
    if not 0 < a < b < n:
        raise ValueError(
            f"series of {num_steps} steps has {n} windows of {window} steps: too few for split "
            f"{list(ratios)} (train/val/test would get {a}/{b - a}/{n - b} windows)"
        )
    starts = np.arange(n)
    return {"train": starts[:a], "val": starts[a:b], "test": starts[b:]}


def data_changes(recorded: dict, now: dict) -> list[str]:
    """What differs between two Dataset.fingerprint()s, in words (empty when the data is the same)."""
    changes = []
    if recorded["shape"] != now["shape"]:
        (t0, n0, *_), (t1, n1, *_) = recorded["shape"], now["shape"]
        changes.append(f"shape {recorded['shape']} -> {now['shape']} ({t1 - t0:+d} rows, {n1 - n0:+d} sensors)")
    if recorded["sensor_ids_sha256"] != now["sensor_ids_sha256"]:
        changes.append(f"sensor ids (first {recorded['first_ids']} -> {now['first_ids']})")
    if recorded["times_sha256"] != now["times_sha256"]:
        changes.append(f"timestamps ({recorded['start']} .. {recorded['end']} -> {now['start']} .. {now['end']})")
    if recorded["values_sha256"] != now["values_sha256"]:
        changes.append("values")
    return changes
