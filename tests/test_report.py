"""Summary report: the route from stage summaries, scaled roadmap ranges, gates, speed files, markdown."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stlib import report


def _write_summaries(out):
    out.mkdir(parents=True)
    pd.DataFrame({"seeds": [3, 1], "MAE": [14.4, 20.8], "MAE sd": [0.02, float("nan")], "s/epoch": [2.0, 100.0]},
                 index=pd.Index(["stid", "encdec_start"], name="model")).to_csv(out / "01_summary.csv")
    pd.DataFrame({"kind": ["start", "alone"], "seeds": [3, 3], "MAE": [19.0, 17.5], "MAE sd": [0.3, 0.2],
                  "s/epoch": [30.0, 31.0]}, index=pd.Index(["start", "+noise"], name="config")).to_csv(
        out / "03_ablation_summary.csv")
    pd.DataFrame({"kind": ["start", "component"], "seeds": [3, 3], "MAE": [17.6, 15.0], "MAE sd": [0.2, 0.1],
                  "s/epoch": [31.0, 40.0]}, index=pd.Index(["stage 1", "+ alternation"], name="config")).to_csv(
        out / "04_summary.csv")


def test_route_picks_each_stage_best_and_scales_the_roadmap(tmp_path):
    _write_summaries(tmp_path / "p")
    table, baseline = report.route(tmp_path / "p")
    assert baseline == 14.4
    assert table["stage"].tolist() == ["baseline: STID-style", "01 where we stand", "03 stage 1 (tuned)",
                                       "04 stage 2 (alternating)"]
    assert table["configuration"].tolist() == ["stid", "encdec_start", "+noise", "+ alternation"]
    r = table.set_index("stage")
    f = 14.4 / 14.57
    assert r.loc["03 stage 1 (tuned)", "roadmap low"] == pytest.approx(15 * f)
    assert r.loc["04 stage 2 (alternating)", "roadmap high"] == pytest.approx(14 * f)
    assert r.loc["01 where we stand", "roadmap low"] == pytest.approx(19.07 * f)


def test_gates_pass_and_fail(tmp_path):
    _write_summaries(tmp_path / "p")
    table, baseline = report.route(tmp_path / "p")
    g = report.gates(table, baseline, peer_mae=14.645).set_index("gate")["passed"]
    assert not g.iloc[0]  # stage 1 at 17.5 > 1.098 x 14.4 = 15.81
    assert not g["stage 2 beats the baseline"]  # 15.0 > 14.4
    assert not g["stage 2 at least 5 % below the peer STID"]
    table.loc[table.stage == "04 stage 2 (alternating)", "MAE"] = 13.5
    g = report.gates(table, baseline, peer_mae=14.645).set_index("gate")["passed"]
    assert g["stage 2 beats the baseline"] and g["stage 2 at least 5 % below the peer STID"]


def test_route_of_an_empty_folder(tmp_path):
    table, baseline = report.route(tmp_path)
    assert table.empty and baseline is None
    assert report.gates(table, baseline).empty


def test_speed_reads_benchmark_files_and_markdown(tmp_path):
    rows = [{"rung": "naive", "s_per_epoch": 10.0, "throughput_x": 1.0},
            {"rung": "+ AMP", "s_per_epoch": 4.0, "throughput_x": 2.6}]
    (tmp_path / "speed_cpu.json").write_text(json.dumps({"device": "cpu", "dataset": "x", "table": rows}))
    s = report.speed(tmp_path)
    assert s.loc[0, "speed-up"] == pytest.approx(2.5) and s.loc[0, "fastest rung"] == "+ AMP"
    text = report.markdown("p", "x", pd.DataFrame({"a": [1.23456], "b": ["x|y"]}), pd.DataFrame(), s)
    assert "| a | b |" in text and "| 1.235 | x/y |" in text and "(nothing measured yet)" in text
    path = report.write(tmp_path / "R.md", text)
    assert path.read_text() == text


def _fake_gpu_runs(root, names_mae: dict, budget=100.0):
    """Run records as fit() writes them (config.yaml, metrics.json, history.csv, env.json) for results.export."""
    import yaml

    from stlib.config import RunConfig

    for name, maes in names_mae.items():
        for seed, mae in enumerate(maes):
            d = root / "runs" / "04" / f"run-{name}-{seed}"
            d.mkdir(parents=True)
            cfg = RunConfig(stage="04", name=name).to_dict()
            cfg["train"].update(seed=seed, time_budget_s=budget)
            (d / "config.yaml").write_text(yaml.safe_dump(cfg))
            h = {str(k): {"mae": mae + k / 10, "rmse": 2 * mae, "mape": 10.0} for k in (3, 6, 12)}
            (d / "metrics.json").write_text(json.dumps({
                "test": {"mae": mae, "rmse": 2 * mae, "mape": 10.0, "by_horizon": h}, "val": {"mae": mae + 1},
                "best_epoch": 3, "epochs_run": 4, "seconds_per_epoch": 2.0, "train_seconds": budget + 1,
                "params": 10, "dataset": "pems08-tail", "stopped_by": "time budget"}))
            (d / "env.json").write_text(json.dumps({"device": "cuda", "device_name": "Fake GPU"}))
            pd.DataFrame({"epoch": [1, 2, 3, 4], "val_mae": [mae + 3, mae + 2, mae, mae + 0.5]}).to_csv(
                d / "history.csv", index=False)


def test_gpu_stage2_runs_export_summarize_and_verdict(tmp_path):
    from stlib import results, runplots

    _fake_gpu_runs(tmp_path / "a", {"stage 1 (temporal only)": [19.0, 19.2, 19.1], "+ alternation (T S T S)": [18.0, 18.1, 18.2]})
    _fake_gpu_runs(tmp_path / "b", {"+ alternation (T S T S)": [17.0, 17.05, 17.1]}, budget=50.0)
    assert results.main(["--stage", "04", "--root", f"twelve={tmp_path / 'a'}", "--root", f"three={tmp_path / 'b'}",
                         "--out", str(tmp_path / "bench" / "stage2_fake.csv"),
                         "--histories", str(tmp_path / "bench" / "stage2_fake_history.csv")]) == 0
    runs = pd.read_csv(tmp_path / "bench" / "stage2_fake.csv")
    assert len(runs) == 9 and set(runs["stopped_by"]) == {"time budget"} and set(runs["device"]) == {"Fake GPU"}
    assert runs.groupby("batch")["concurrent_runs"].first().to_dict() == {"three": 3, "twelve": 6}
    s = report.gpu_runs(tmp_path / "bench")  # the _history file is not a runs file
    assert len(s) == 3 and s["seeds"].tolist() == [3, 3, 3]
    twelve = s[s["batch"] == "twelve"].set_index("name")
    assert twelve.loc["+ alternation (T S T S)", "MAE"] == pytest.approx(18.1)
    assert twelve.loc["+ alternation (T S T S)", "budget s"] == 100.0
    assert "beats" in report.verdict(twelve, "+ alternation (T S T S)", "stage 1 (temporal only)")
    assert "loses to" in report.verdict(twelve, "stage 1 (temporal only)", "+ alternation (T S T S)")
    assert "not both measured" in report.verdict(twelve, "x", "stage 1 (temporal only)")
    hist = pd.read_csv(tmp_path / "bench" / "stage2_fake_history.csv")
    assert len(hist) == 36 and {"batch", "name", "seed", "epoch", "val_mae"} <= set(hist.columns)
    ax = runplots.budget_curves(hist[hist["batch"] == "twelve"])
    assert len(ax.get_lines()) == 2
    assert report.gpu_runs(tmp_path / "bench", "stage1").empty  # another study's files are not read
    (tmp_path / "bench" / "stage1_fake.csv").write_text((tmp_path / "bench" / "stage2_fake.csv").read_text())
    assert len(report.gpu_runs(tmp_path / "bench", "stage1")) == 3
    assert "Stage 2, committed time-budgeted runs" in report.markdown("p", "d", pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), s)


def test_results_export_names_an_empty_root(tmp_path, capsys):
    from stlib import results

    assert results.main(["--stage", "04", "--root", f"x={tmp_path}", "--out", str(tmp_path / "o.csv")]) == 2
    assert "no finished runs of stage 04" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert results.main(["--stage", "04", "--root", str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2


def test_gates_hold_committed_stage2_runs_to_the_targets():
    committed = pd.DataFrame([
        {"file": "stage2_nvidia-h100.csv", "batch": "3 at once", "name": "+ adaptive embedding", "seeds": 3,
         "MAE": 15.75, "MAE sd": 0.15, "budget s": 417.0, "device": "NVIDIA H100"},
        {"file": "stage2_cpu.csv", "batch": "one after another", "name": "alternating p3", "seeds": 3,
         "MAE": 17.2, "MAE sd": 0.2, "budget s": 900.0, "device": "cpu"},
    ])
    g = report.gates(pd.DataFrame(), 14.41, peer_mae=14.645, committed=committed).set_index("gate")
    best = "committed runs, best (+ adaptive embedding, NVIDIA H100)"
    assert g.loc[f"{best}: at least 5 % below the peer STID", "MAE"] == 15.75
    assert not g.loc[f"{best}: at least 5 % below the peer STID", "passed"]
    assert not g.loc[f"{best}: beats the baseline", "passed"]
    cpu = g.loc["CPU stage 2 (alternating p3, 15 min a seed) beats STAEformer's own code within 55 min on this CPU"]
    assert cpu["threshold"] == 18.80 and cpu["passed"]
    committed.loc[1, "MAE"] = 13.8  # now the CPU batch is the best and clears every target
    g = report.gates(pd.DataFrame(), 14.41, peer_mae=14.645, committed=committed)
    assert g["passed"].all() and len(g) == 3
    assert report.gates(pd.DataFrame(), 14.41, peer_mae=None, committed=committed).empty  # other datasets: no peer
