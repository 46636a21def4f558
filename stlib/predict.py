"""Forecasts out of a trained run (or the mean forecast of several), with timestamps, horizons and sensor ids.

    python -m stlib.predict RUN_DIR [--split test] [--out FILE]
    python -m stlib.predict RUN_DIR RUN_DIR ... --out FILE      # a seed ensemble: the runs' mean forecast

Writes the best checkpoint's forecasts of a split twice: a tidy table, one row per (window,
horizon, sensor) with columns time (the forecast's target timestamp), issued (the end of the input
window), horizon (steps ahead), sensor (id), prediction and target (original units; empty where the
reading is missing, masked in the metrics), as CSV or, for a .parquet FILE, parquet (needs pyarrow);
and the same as arrays in an .npz beside it. Default FILE: RUN_DIR/forecasts_<split>.csv. Files are
written to a temp file and renamed; a bad RUN_DIR is one error line, exit code 2, nothing written. The data is
checked against the run's record (data.json): values, rows, timestamps or sensor ids that differ from what it
trained on are refused, naming what differs; --new-data forecasts on other readings of the same sensors on purpose.
Several RUN_DIRs (runs of the same data, e.g. one configuration's seeds) write their mean forecast in the same
format and print each member's and the ensemble's MAE.

In a notebook: `forecast_table(run, "test")` (a Run from fit() or Run.from_dir) is the same table.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .config import ConfigError
from .reporting import records

TABLE_SUFFIXES = (".csv", ".parquet")


def forecasts(run, split: str = "test") -> dict[str, np.ndarray]:
    """A run's forecasts of a split as arrays: prediction and target (S, H, N), issued (S,), time (S, H),
    horizon (H,), sensor (N,). target is NaN where the reading is missing (stored as 0)."""
    ds = run.dataset
    if split not in ds.splits:
        raise ValueError(f"unknown split '{split}' (have: {', '.join(ds.splits)})")
    pred, true = run.predict(split)  # (S, H, N) each, original units
    starts = np.asarray(ds.splits[split])  # (S,)
    stamps = ds.timestamps.to_numpy()  # (T,)
    targets = starts[:, None] + ds.in_steps + np.arange(ds.out_steps)  # (S, H) rows of the forecast steps
    return {
        "prediction": pred.astype(np.float32),
        "target": np.where(true == 0, np.nan, true).astype(np.float32),
        "issued": stamps[starts + ds.in_steps - 1],
        "time": stamps[targets],
        "horizon": np.arange(1, ds.out_steps + 1),
        "sensor": np.asarray(ds.sensors, dtype=str),
    }


def mean_forecast(members: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    """The mean prediction of several runs' `forecasts` of the same windows (an error naming the run that differs)."""
    first = members[0]
    for name, f in zip(names[1:], members[1:]):
        for key in ("issued", "time", "horizon", "sensor", "target"):
            if f[key].shape != first[key].shape or not np.array_equal(f[key], first[key], equal_nan=key == "target"):
                raise ValueError(
                    f"{name}: its {key} differs from {names[0]}'s: an ensemble needs runs of the same data"
                )
    return {**first, "prediction": np.mean([f["prediction"] for f in members], axis=0).astype(np.float32)}


def mae(f: dict[str, np.ndarray]) -> float:
    """The MAE of a `forecasts` dict over the readings present (missing targets are NaN)."""
    return float(np.nanmean(np.abs(f["prediction"].astype(np.float64) - f["target"])))


def tidy(f: dict[str, np.ndarray]) -> pd.DataFrame:
    """The arrays of `forecasts` as one row per (window, horizon, sensor), in that order."""
    S, H, N = f["prediction"].shape
    return pd.DataFrame(
        {
            "time": np.repeat(f["time"].reshape(-1), N),  # (S * H * N,)
            "issued": np.repeat(f["issued"], H * N),
            "horizon": np.tile(np.repeat(f["horizon"], N), S),
            "sensor": np.tile(f["sensor"], S * H),
            "prediction": f["prediction"].reshape(-1),
            "target": f["target"].reshape(-1),
        }
    )


def forecast_table(run, split: str = "test") -> pd.DataFrame:
    """A run's forecasts of a split as a tidy DataFrame (columns time, issued, horizon, sensor, prediction, target)."""
    return tidy(forecasts(run, split))


# ---------------------------------------------------------------------------------------------
# files


def output_paths(run_dir: Path, split: str, out: str | Path | None) -> tuple[Path, Path]:
    """(table file, npz file): FILE's suffix picks the table format; the npz goes beside it."""
    table = Path(out).expanduser() if out else Path(run_dir) / f"forecasts_{split}.csv"
    if table.suffix == ".npz":
        table = table.with_suffix(".csv")
    if table.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"--out {table}: use a .csv, .parquet or .npz file name")
    if table.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(
                f"--out {table}: parquet needs the pyarrow package (pip install pyarrow); or write .csv"
            ) from None
    if not table.parent.is_dir():
        raise FileNotFoundError(f"--out {table}: folder {table.parent} does not exist")
    return table, table.with_suffix(".npz")


def check_run_dir(run_dir: Path) -> None:
    """A clear error unless run_dir is a finished run directory with a best checkpoint."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a directory (expected a run directory outputs/runs/<stage>/<run-id>)")
    for name, why in (
        ("metrics.json", "unfinished or not a run directory"),
        ("config.yaml", "not a run directory"),
        ("best.pt", "trained with train.save_checkpoint=false?"),
    ):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: no {name} ({why})")


def open_run(run_dir: Path, device: str = "cpu", dataset=None, new_data: bool = False):
    """Run.from_dir (best weights; the dataset reloaded unless given, and refused when it differs from what the run
    trained on, unless new_data) with one clear error for an unreadable record."""
    from .train import Run

    check_run_dir(Path(run_dir))
    try:
        return Run.from_dir(Path(run_dir), dataset=dataset, device=device, new_data=new_data)
    except (ConfigError, ValueError, OSError):  # bad config, data files: their messages name the problem
        raise
    except Exception as e:  # noqa: BLE001  a corrupt checkpoint or record fails in many ways
        raise ValueError(f"{run_dir}: cannot read the run back: {type(e).__name__}: {e}") from None


def member_forecasts(dirs: list[Path], split: str = "test", device: str = "cpu", new_data=False) -> list[dict]:
    """The forecasts of a split of each run directory; runs on the same data block share one loaded dataset."""
    members, loaded = [], {}
    for d in dirs:
        try:
            key = repr(yaml.safe_load((d / "config.yaml").read_text())["data"])
        except Exception:  # noqa: BLE001  open_run names what is wrong with the record
            key = str(d)
        run = open_run(d, device, loaded.get(key), new_data)
        loaded[key] = run.dataset
        members.append(forecasts(run, split))
    return members


def ensemble_mae(run_dirs, split: str = "test", device: str = "cpu") -> float:
    """The MAE of several runs' mean forecast of a split (e.g. one configuration's seeds)."""
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        check_run_dir(d)
    return mae(mean_forecast(member_forecasts(dirs, split, device), [str(d) for d in dirs]))


def write_forecasts(
    run_dirs, split: str = "test", out=None, device: str = "cpu", say=print, new_data: bool = False
) -> tuple[Path, Path]:
    """Write the forecasts of a split (one RUN_DIR, or several's mean) as a table (CSV/parquet) and an npz."""
    dirs = [Path(d) for d in ([run_dirs] if isinstance(run_dirs, str | Path) else run_dirs)]
    if len(dirs) > 1 and out is None:
        raise ValueError(f"{len(dirs)} RUN_DIRs: give --out FILE for their mean forecast")
    for d in dirs:
        check_run_dir(d)
    table_path, npz_path = output_paths(dirs[0], split, out)
    members = member_forecasts(dirs, split, device, new_data)
    f = mean_forecast(members, [str(d) for d in dirs])
    if len(dirs) > 1:
        say(f"{split} MAE: members {', '.join(f'{mae(m):.3f}' for m in members)}; ensemble {mae(f):.3f}")
    table = _table_bytes(tidy(f), table_path.suffix)
    buf = io.BytesIO()
    np.savez(buf, **f)
    existed = table_path.exists()
    records.atomic_write_bytes(table_path, table)
    try:
        records.atomic_write_bytes(npz_path, buf.getvalue())
    except BaseException:
        if not existed:
            table_path.unlink(missing_ok=True)  # both files or none
        raise
    return table_path, npz_path


def _table_bytes(df: pd.DataFrame, suffix: str) -> bytes:
    if suffix == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    return df.to_csv(index=False).encode()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stlib.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        nargs="+",
        help="a finished run directory (outputs/runs/<stage>/<run-id>); several: their mean",
    )
    ap.add_argument("--split", default="test", help="train | val | test (default test)")
    ap.add_argument(
        "--out",
        metavar="FILE",
        help="table file: .csv (default RUN_DIR/forecasts_<split>.csv; needed for several) or .parquet; the .npz beside it",
    )
    ap.add_argument("--device", default="cpu", help="cpu | cuda | ... (default cpu)")
    ap.add_argument(
        "--new-data",
        action="store_true",
        help="forecast on data that differs from what the run trained on (new readings of the same sensors)",
    )
    args = ap.parse_args(argv)
    try:
        paths = write_forecasts(args.run_dir, args.split, args.out, args.device, new_data=args.new_data)
    except (ConfigError, ValueError, OSError) as e:  # OSError: missing files, unwritable output
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
