"""Forecasts out of a trained run, with timestamps, horizons and sensor ids.

    python -m stlib.predict RUN_DIR [--split test] [--out FILE]

Writes the best checkpoint's forecasts of a split twice: a tidy table, one row per (window,
horizon, sensor) with columns time (the forecast's target timestamp), issued (the end of the input
window), horizon (steps ahead), sensor (id), prediction and target (original units; empty where the
reading is missing, masked in the metrics), as CSV or, for a .parquet FILE, parquet (needs pyarrow);
and the same as arrays in an .npz beside it. Default FILE: RUN_DIR/forecasts_<split>.csv. Files are
written to a temp file and renamed; a bad RUN_DIR is one error line, exit code 2, nothing written.

In a notebook: `forecast_table(run, "test")` (a Run from fit() or Run.from_dir) is the same table.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

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


def open_run(run_dir: Path, device: str = "cpu"):
    """Run.from_dir (best weights, the dataset reloaded) with one clear error for an unreadable record."""
    from .train import Run

    check_run_dir(Path(run_dir))
    try:
        return Run.from_dir(Path(run_dir), device=device)
    except (ConfigError, ValueError, OSError):  # bad config, data files: their messages name the problem
        raise
    except Exception as e:  # noqa: BLE001  a corrupt checkpoint or record fails in many ways
        raise ValueError(f"{run_dir}: cannot read the run back: {type(e).__name__}: {e}") from None


def write_forecasts(run_dir, split: str = "test", out=None, device: str = "cpu") -> tuple[Path, Path]:
    """Write RUN_DIR's forecasts of a split as a table (CSV/parquet) and an npz; return both paths."""
    check_run_dir(Path(run_dir))
    table_path, npz_path = output_paths(Path(run_dir), split, out)
    f = forecasts(open_run(run_dir, device), split)
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
    ap.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (outputs/runs/<stage>/<run-id>)")
    ap.add_argument("--split", default="test", help="train | val | test (default test)")
    ap.add_argument(
        "--out",
        metavar="FILE",
        help="table file: .csv (default RUN_DIR/forecasts_<split>.csv) or .parquet; the .npz goes beside it",
    )
    ap.add_argument("--device", default="cpu", help="cpu | cuda | ... (default cpu)")
    args = ap.parse_args(argv)
    try:
        paths = write_forecasts(args.run_dir, args.split, args.out, args.device)
    except (ConfigError, ValueError, OSError) as e:  # OSError: missing files, unwritable output
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
