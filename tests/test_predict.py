"""python -m stlib.predict: a run's forecasts with timestamps, horizons and sensor ids, as a tidy table and an npz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from stlib.config import build_run_config
from stlib.paths import REPO_ROOT
from stlib.predict import forecast_table, main
from stlib.train import Run, fit

IDS = ["716939", "717445", "717446", "773869"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch run on a timestamped 15-minute CSV with named sensors and a few missing cells."""
    root = tmp_path_factory.mktemp("predict")
    T = 400
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        rng.uniform(20, 70, size=(T, len(IDS))).round(2),
        columns=IDS,
        index=pd.date_range("2024-05-03 22:00", periods=T, freq="15min", name="time"),
    )
    df.iloc[-30:, 2] = np.nan  # a sensor dark at the end of the test period
    df.to_csv(root / "speed.csv")
    cfg = build_run_config(
        {
            "stage": "test",
            "data": {"name": "file", "path": str(root / "speed.csv"), "value_name": "speed", "unit": "mph"},
            "model": {
                "name": "encdec",
                "d_model": 8,
                "n_heads": 2,
                "encoder_depth": 1,
                "decoder_depth": 1,
                "use_denoising": False,
            },
            "train": {"epochs": 1, "batch_size": 64, "quiet": True, "save_checkpoint": True, "threads": 1},
        }
    )
    return fit(cfg, out_root=root / "outputs").dir


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cli_writes_tidy_csv_and_npz(run_dir, capsys):
    assert main([str(run_dir)]) == 0
    csv, npz = run_dir / "forecasts_test.csv", run_dir / "forecasts_test.npz"
    assert capsys.readouterr().out.split() == [str(csv), str(npz)]
    table = pd.read_csv(csv, parse_dates=["time", "issued"], dtype={"sensor": str})
    assert list(table.columns) == ["time", "issued", "horizon", "sensor", "prediction", "target"]
    run = Run.from_dir(run_dir)
    ds = run.dataset
    S, H, N = len(ds.splits["test"]), 12, len(IDS)
    assert len(table) == S * H * N
    assert set(table["sensor"]) == set(IDS) and list(table["sensor"][:N]) == IDS
    np.testing.assert_array_equal(table["time"] - table["issued"], pd.to_timedelta(table["horizon"] * 15, unit="min"))
    first = ds.splits["test"][0]
    assert table["issued"].iloc[0] == ds.timestamps[first + 11]
    pred, true = run.predict("test")  # (S, H, N)
    np.testing.assert_allclose(table["prediction"].to_numpy(), pred.reshape(-1), rtol=1e-6)
    assert table["target"].isna().sum() == int((true == 0).sum()) > 0  # missing readings: empty cells
    np.testing.assert_allclose(table["target"].fillna(0).to_numpy(), true.reshape(-1), rtol=1e-6)
    with np.load(npz) as z:
        assert z["prediction"].shape == (S, H, N) and list(z["sensor"]) == IDS
        np.testing.assert_array_equal(z["horizon"], np.arange(1, 13))
        assert pd.Timestamp(z["time"][0, 0]) == ds.timestamps[first + 12]


def test_split_out_and_notebook_function_agree(run_dir, tmp_path):
    assert main([str(run_dir), "--split", "val", "--out", str(tmp_path / "val.csv")]) == 0
    assert _listing(tmp_path) == ["val.csv", "val.npz"]
    table = pd.read_csv(tmp_path / "val.csv", parse_dates=["time", "issued"], dtype={"sensor": str})
    expected = forecast_table(Run.from_dir(run_dir), "val")
    assert len(table) == len(expected) == len(Run.from_dir(run_dir).dataset.splits["val"]) * 12 * len(IDS)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, check_exact=False, rtol=1e-6)


def test_parquet_by_suffix(run_dir, tmp_path, capsys):
    out = tmp_path / "f.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert main([str(run_dir), "--out", str(out)]) == 2
        assert "parquet needs the pyarrow package" in capsys.readouterr().err
        assert _listing(tmp_path) == []
        return
    assert main([str(run_dir), "--out", str(out)]) == 0
    assert _listing(tmp_path) == ["f.npz", "f.parquet"]
    table = pd.read_parquet(out)
    assert list(table.columns) == ["time", "issued", "horizon", "sensor", "prediction", "target"]
    assert len(table) == len(Run.from_dir(run_dir).dataset.splits["test"]) * 12 * len(IDS)


def _copy_run(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("forecasts_*"))
    return copy


BAD_RUNS = {  # case -> (how to spoil a copy of the run, message fragment)
    "absent": (lambda d: shutil.rmtree(d), "not a directory"),
    "no_metrics": (lambda d: (d / "metrics.json").unlink(), "no metrics.json (unfinished or not a run directory)"),
    "no_best": (lambda d: (d / "best.pt").unlink(), "no best.pt"),
    "corrupt_best": (lambda d: (d / "best.pt").write_bytes(b"junk"), "cannot read the run back"),
    "bad_config": (
        lambda d: (d / "config.yaml").write_text("data: {name: synthetic, num_sensorz: 3}\n"),
        "unknown key 'num_sensorz'",
    ),
    "bad_split": (lambda d: None, "unknown split 'dev'"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_dir_is_one_line_exit_2_nothing_written(run_dir, tmp_path, capsys, case):
    spoil, fragment = BAD_RUNS[case]
    copy = _copy_run(run_dir, tmp_path)
    spoil(copy)
    before = _listing(tmp_path)
    args = [str(copy)] + (["--split", "dev"] if case == "bad_split" else [])
    assert main(args) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1
    assert cap.err.startswith("error: ") and fragment in cap.err
    assert _listing(tmp_path) == before


@pytest.mark.slow  # a python subprocess
def test_bad_out_suffix_and_module_entry_point(run_dir, tmp_path):
    assert main([str(run_dir), "--out", str(tmp_path / "f.xlsx")]) == 2
    assert main([str(run_dir), "--out", str(tmp_path / "nowhere" / "f.csv")]) == 2
    assert _listing(tmp_path) == []
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "stlib.predict", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr.strip() == f"error: {tmp_path / 'missing'}: not a directory (expected a run directory "
        "outputs/runs/<stage>/<run-id>)"
    )
