"""python -m stlib.predict: a run's forecasts with timestamps, horizons and sensor ids, as a tidy table and an npz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from stlib.config import ConfigError, build_run_config
from stlib.paths import REPO_ROOT
from stlib.predict import forecast_table, main
from stlib.train import Run, fit

IDS = ["716939", "717445", "717446", "773869"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("predict")


def _config(root, seed=0):
    T = 400
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        rng.uniform(20, 70, size=(T, len(IDS))).round(2),
        columns=IDS,
        index=pd.date_range("2024-05-03 22:00", periods=T, freq="15min", name="time"),
    )
    df.iloc[-30:, 2] = np.nan  # a sensor dark at the end of the test period
    df.to_csv(root / "speed.csv")
    return build_run_config(
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
            "train": {
                "epochs": 1,
                "batch_size": 64,
                "quiet": True,
                "save_checkpoint": True,
                "threads": 1,
                "seed": seed,
            },
        }
    )


@pytest.fixture(scope="module")
def run_dir(root):
    """A one-epoch run on a timestamped 15-minute CSV with named sensors and a few missing cells."""
    return fit(_config(root), out_root=root / "outputs").dir


@pytest.fixture(scope="module")
def seed_runs(root, run_dir):
    """The same run with seeds 0, 1 and 2."""
    return [run_dir, *(fit(_config(root, s), out_root=root / "outputs").dir for s in (1, 2))]


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


def test_several_runs_write_their_mean_forecast(seed_runs, tmp_path, capsys):
    out = tmp_path / "ens.csv"
    assert main([*map(str, seed_runs), "--out", str(out)]) == 0
    cap = capsys.readouterr().out.splitlines()
    assert cap[-2:] == [str(out), str(out.with_suffix(".npz"))]
    members = [Run.from_dir(d).predict("test") for d in seed_runs]
    true = members[0][1]
    mean = np.mean([p for p, _ in members], axis=0)
    assert not np.allclose(members[0][0], members[1][0])  # the seeds differ, so the mean is not any one of them
    table = pd.read_csv(out, dtype={"sensor": str})
    pd.testing.assert_frame_equal(
        table.drop(columns="prediction"),
        forecast_table(Run.from_dir(seed_runs[0])).drop(columns="prediction").astype({"time": str, "issued": str}),
        check_dtype=False,
    )
    np.testing.assert_allclose(table["prediction"].to_numpy(), mean.reshape(-1), rtol=1e-5)
    maes = [np.abs(p - true)[true != 0].mean() for p, _ in members] + [np.abs(mean - true)[true != 0].mean()]
    assert cap[0] == "test MAE: members " + ", ".join(f"{m:.3f}" for m in maes[:-1]) + f"; ensemble {maes[-1]:.3f}"


def test_several_runs_need_out_and_the_same_data(seed_runs, tmp_path, capsys):
    assert main([*map(str, seed_runs[:2])]) == 2
    assert "2 RUN_DIRs: give --out FILE" in capsys.readouterr().err
    other = _copy_run(seed_runs[1], tmp_path)  # the same run, its data file cut by a day
    data = tmp_path / "short.csv"
    pd.read_csv(_data_file(seed_runs[1])).iloc[:-96].to_csv(data, index=False)
    cfg = (other / "config.yaml").read_text().replace(str(_data_file(seed_runs[1])), str(data))
    (other / "config.yaml").write_text(cfg)
    assert main([str(seed_runs[0]), str(other), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err  # the record's data check comes first: the rows it trained on are gone
    assert f"{other}: the data differs from what the run trained on: shape" in err and "-96 rows" in err
    assert main([str(seed_runs[0]), str(other), "--out", str(tmp_path / "e.csv"), "--new-data"]) == 2
    err = capsys.readouterr().err  # on purpose: then the ensemble's members must still forecast the same windows
    assert f"{other}: its " in err and "differs" in err and not (tmp_path / "e.csv").exists()


def _data_file(run_dir):
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["path"]


def test_results_export_gives_each_configurations_seed_ensemble(seed_runs, root, tmp_path_factory):
    import yaml

    from stlib.reporting import results

    table, _ = results.export({"a": root / "outputs"}, "test", ensemble=True)
    three = [d.name for d in seed_runs]
    rows = table[table["run_dir"].isin(three)]
    members = [Run.from_dir(d).predict("test") for d in seed_runs]
    true = members[0][1]
    mean = np.mean([p for p, _ in members], axis=0)
    want = np.abs(mean - true)[true != 0].mean()  # the ensemble's masked MAE, by hand
    assert len(rows) == 3 and rows["ensemble_test_mae"].nunique() == 1
    assert rows["ensemble_test_mae"].iloc[0] == pytest.approx(want, rel=1e-5)
    summary = results.seed_summary(results.from_export(table))
    assert summary.columns.get_loc("ensemble MAE") == summary.columns.get_loc("MAE sd") + 1
    other = tmp_path_factory.mktemp("renamed") / "outputs"  # seed 2 trained under another name, published as one
    for d in seed_runs:
        shutil.copytree(d, other / "runs" / "test" / d.name, ignore=shutil.ignore_patterns("forecasts_*"))
    cfg = other / "runs" / "test" / seed_runs[2].name / "config.yaml"
    record = yaml.safe_load(cfg.read_text())
    name, record["name"] = record["name"], "seed2_name"
    cfg.write_text(yaml.safe_dump(record, sort_keys=False))
    renamed, _ = results.export({"a": other}, "test", rename={"seed2_name": name}, ensemble=True)
    assert renamed["ensemble_test_mae"].tolist() == pytest.approx([want] * 3, rel=1e-5)  # before: NaN for seed 2


def _with_data(run_dir, tmp_path, change):
    """A copy of the run whose data file is the original changed by change(DataFrame) -> DataFrame."""
    import yaml

    other, data = _copy_run(run_dir, tmp_path), tmp_path / "changed.csv"
    change(pd.read_csv(_data_file(run_dir), index_col=0)).to_csv(data)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["data"]["path"] = str(data)
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    return other


def _shifted(df):
    out = df.iloc[96:].copy()  # a day cut, the rest moved a day earlier
    out.index = df.index[:-96]
    return out


CHANGED = {  # case -> (the change, what the refusal names, whether --new-data forecasts on it)
    "scaled": (lambda df: df * 1.6, "the data differs from what the run trained on: values", True),
    "cut_and_moved": (_shifted, "shape [400, 4, 1] -> [304, 4, 1] (-96 rows, +0 sensors)", True),
    "renamed": (lambda df: df.rename(columns={IDS[1]: "999"}), "sensor ids (first", False),
    "sensor_added": (lambda df: df.assign(**{"800001": df[IDS[0]]}), "(+0 rows, +1 sensors)", False),
}


@pytest.mark.parametrize("case", CHANGED)
def test_predict_refuses_data_that_differs_from_what_the_run_trained_on(run_dir, tmp_path, capsys, case):
    change, words, new_data_ok = CHANGED[case]
    other = _with_data(run_dir, tmp_path, change)
    assert main([str(other)]) == 2
    err = capsys.readouterr().err
    assert words in err and "--new-data" in err and not (other / "forecasts_test.csv").exists()
    # on purpose: new readings of the same sensors forecast; other sensors never do (not a state_dict error)
    assert main([str(other), "--new-data"]) == (0 if new_data_ok else 2)
    if not new_data_ok:
        assert "sensor" in capsys.readouterr().err


def test_the_record_keeps_the_data_fingerprint_and_absolute_paths(tmp_path, monkeypatch):
    import json

    import yaml

    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    cfg = _config(tmp_path / "work")
    cfg.data.path = "speed.csv"  # relative to where training runs
    run = fit(cfg, out_root=tmp_path / "outputs")
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())["data"]["path"]
    assert saved == str(tmp_path / "work" / "speed.csv")
    fp = json.loads((run.dir / "data.json").read_text())
    assert fp["shape"] == [400, 4, 1] and fp["first_ids"] == IDS and len(fp["values_sha256"]) == 16
    monkeypatch.chdir(tmp_path)  # another directory: the record resolves the same
    assert main([str(run.dir)]) == 0
    assert fit(resume=run.dir).metrics["test"] == run.metrics["test"]
    with pytest.raises(ConfigError, match=r"data.path: '.*work/speed.csv' -> '.*data0/speed.csv'"):
        fit(cfg, resume=run.dir)  # here the relative path names another file
