"""Summary report: the route from stage summaries, scaled roadmap ranges, gates, speed files, markdown."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from stlib.reporting import report, reportplots


def _numbers(text: str) -> list[float]:
    """The decimal numbers a sentence carries, in order (what it says, whatever its wording)."""
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def _write_summaries(out):
    out.mkdir(parents=True)
    pd.DataFrame(
        {"seeds": [3, 1], "MAE": [14.4, 20.8], "MAE sd": [0.02, float("nan")], "s/epoch": [2.0, 100.0]},
        index=pd.Index(["stid", "encdec_start"], name="model"),
    ).to_csv(out / "01_summary.csv")
    pd.DataFrame(
        {
            "kind": ["start", "alone"],
            "seeds": [3, 3],
            "MAE": [19.0, 17.5],
            "MAE sd": [0.3, 0.2],
            "s/epoch": [30.0, 31.0],
        },
        index=pd.Index(["start", "+noise"], name="config"),
    ).to_csv(out / "03_ablation_summary.csv")
    pd.DataFrame(
        {
            "kind": ["start", "component"],
            "seeds": [3, 3],
            "MAE": [17.6, 15.0],
            "MAE sd": [0.2, 0.1],
            "s/epoch": [31.0, 40.0],
        },
        index=pd.Index(["stage 1", "+ alternation"], name="config"),
    ).to_csv(out / "04_summary.csv")


def test_route_picks_each_stage_best_and_scales_the_roadmap(tmp_path):
    _write_summaries(tmp_path / "p")
    table, baseline = report.route(tmp_path / "p")
    assert baseline == 14.4
    assert table["stage"].tolist() == [
        "baseline: STID-style",
        "01 where we stand",
        "03 stage 1 (start)",
        "03 stage 1 (tuned)",
        "04 stage 2 (alternating)",
    ]
    assert table["configuration"].tolist() == ["stid", "encdec_start", "start", "+noise", "+ alternation"]
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
    rows = [
        {"rung": "naive", "s_per_epoch": 10.0, "throughput_x": 1.0},
        {"rung": "+ AMP", "s_per_epoch": 4.0, "throughput_x": 2.6},
    ]
    (tmp_path / "speed_cpu.json").write_text(json.dumps({"device": "cpu", "dataset": "x", "table": rows}))
    s = report.speed(tmp_path)
    assert s.loc[0, "speed-up"] == pytest.approx(2.5) and s.loc[0, "fastest rung"] == "+ AMP"
    text = report.markdown("p", "x", pd.DataFrame({"a": [1.23456], "b": ["x|y"]}), pd.DataFrame(), s)
    assert "| a | b |" in text and "| 1.235 | x/y |" in text and "(nothing measured yet)" in text
    path = report.write(tmp_path / "R.md", text)
    assert path.read_text() == text


def _fake_budgeted_runs(root, names_mae: dict, budget=100.0):
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
            (d / "metrics.json").write_text(
                json.dumps(
                    {
                        "test": {"mae": mae, "rmse": 2 * mae, "mape": 10.0, "by_horizon": h},
                        "val": {"mae": mae + 1},
                        "best_epoch": 3,
                        "epochs_run": 4,
                        "seconds_per_epoch": 2.0,
                        "train_seconds": budget + 1,
                        "params": 10,
                        "dataset": "pems08-tail",
                        "stopped_by": "time budget",
                    }
                )
            )
            (d / "env.json").write_text(json.dumps({"device": "cuda", "device_name": "Fake GPU"}))
            pd.DataFrame({"epoch": [1, 2, 3, 4], "val_mae": [mae + 3, mae + 2, mae, mae + 0.5]}).to_csv(
                d / "history.csv", index=False
            )


def test_gpu_stage2_runs_export_summarize_and_verdict(tmp_path):
    from stlib.reporting import results, runplots

    _fake_budgeted_runs(
        tmp_path / "a", {"stage 1 (temporal only)": [19.0, 19.2, 19.1], "+ alternation (T S T S)": [18.0, 18.1, 18.2]}
    )
    _fake_budgeted_runs(tmp_path / "b", {"+ alternation (T S T S)": [17.0, 17.05, 17.1]}, budget=50.0)
    assert (
        results.main(
            [
                "--stage",
                "04",
                "--root",
                f"twelve={tmp_path / 'a'}",
                "--root",
                f"three={tmp_path / 'b'}",
                "--out",
                str(tmp_path / "bench" / "stage2_fake.csv"),
                "--histories",
                str(tmp_path / "bench" / "stage2_fake_history.csv"),
            ]
        )
        == 0
    )
    runs = pd.read_csv(tmp_path / "bench" / "stage2_fake.csv")
    assert len(runs) == 9 and set(runs["stopped_by"]) == {"time budget"} and set(runs["device"]) == {"Fake GPU"}
    assert runs.groupby("batch")["concurrent_runs"].first().to_dict() == {"three": 3, "twelve": 6}
    s = report.budgeted_runs(tmp_path / "bench")  # the _history file is not a runs file
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
    assert report.budgeted_runs(tmp_path / "bench", "stage1").empty  # another study's files are not read
    (tmp_path / "bench" / "stage1_fake.csv").write_text((tmp_path / "bench" / "stage2_fake.csv").read_text())
    assert len(report.budgeted_runs(tmp_path / "bench", "stage1")) == 3
    assert "Stage 2, committed time-budgeted runs" in report.markdown(
        "p", "d", pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), s
    )


def test_stage2_verdicts_per_batch_cpu_and_target(tmp_path):
    from stlib.reporting import reference, results
    from stlib.studies import ablation

    _fake_budgeted_runs(
        tmp_path / "a", {ablation.STAGE2_START: [19.0, 19.2, 19.1], ablation.ALTERNATION: [18.0, 18.1, 18.2]}
    )
    _fake_budgeted_runs(tmp_path / "b", {ablation.ALTERNATION: [13.0, 13.05, 13.1]}, budget=600.0)
    for label, root, name in (("twelve", "a", "stage2_fake.csv"), ("cpu", "b", "stage2_cpu_fake.csv")):
        assert (
            results.main(
                ["--stage", "04", "--root", f"{label}={tmp_path / root}", "--out", str(tmp_path / "bench" / name)]
            )
            == 0
        )
    s = report.budgeted_runs(tmp_path / "bench")
    lines = report.stage2_verdicts(s, ablation.STAGE2_BATCH_QUESTIONS).splitlines()
    # a header per batch (the CPU batch has nothing to compare), then the one question both of whose answers ran
    assert ["stage2_cpu_fake.csv" in lines[0] and "cpu" in lines[0], "stage2_fake.csv" in lines[1]] == [True, True]
    assert len(lines) == 5 and lines[2].strip().startswith(ablation.ALTERNATION) and ablation.STAGE2_START in lines[2]
    assert f" {results.BEATS} " in lines[2] and _numbers(lines[2])[:3] == pytest.approx([18.1, 19.1, 1.0])
    assert ablation.ALTERNATION in lines[3] and _numbers(lines[3])[:2] == pytest.approx([13.05, 0.05])
    assert "10 min" in lines[3] and reference.STAEFORMER_CPU["mae"] in _numbers(lines[3])
    assert ablation.ALTERNATION in lines[4] and "[cpu]" in lines[4] and 13.05 in _numbers(lines[4])
    assert round(0.95 * reference.STID_PEER_MAE, 2) in _numbers(lines[4]) and lines[4].endswith("MET")
    assert "NOT met" in report.peer_target(reference.STID_PEER_MAE)


def test_against_baseline_puts_the_baseline_beside_every_configuration():
    summary = pd.DataFrame(
        {"MAE": [15.0, 16.5], "MAE sd": [0.1, 0.2], "MAE h12": [17.0, 18.0], "seeds": [3, 3], "RMSE": [25.0, 26.0]},
        index=["a", "b"],
    )
    base = pd.Series({"MAE": 15.0, "MAE sd": 0.05, "MAE h12": 16.0, "seeds": 2, "RMSE": 24.0})
    t = report.against_baseline(summary, base, "STID", peer_mae=16.5)
    assert t.index.tolist() == ["a", "b", "STID"] and "RMSE" not in t
    assert t["vs STID-style %"].tolist() == pytest.approx([0.0, 10.0, 0.0])
    assert t.loc["b", "vs peer STID %"] == pytest.approx(0.0) and t.loc["STID", "seeds"] == 2
    assert "vs peer STID %" not in report.against_baseline(summary, base, "STID")


def test_results_export_names_an_empty_root(tmp_path, capsys):
    from stlib.reporting import results

    assert results.main(["--stage", "04", "--root", f"x={tmp_path}", "--out", str(tmp_path / "o.csv")]) == 2
    assert "no finished runs of stage 04" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert results.main(["--stage", "04", "--root", str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2


def test_results_export_renames_runs_and_refuses_an_unknown_name(tmp_path, capsys):
    from stlib.reporting import results

    _fake_budgeted_runs(tmp_path / "a", {"tt": [19.0, 19.2], "ts": [18.0, 18.1]})
    out = tmp_path / "o.csv"
    assert (
        results.main(
            [
                "--stage",
                "04",
                "--root",
                f"x={tmp_path / 'a'}",
                "--out",
                str(out),
                "--histories",
                str(tmp_path / "h.csv"),
                "--rename",
                "ts=T S on STID",
            ]
        )
        == 0
    )
    runs, hist = pd.read_csv(out), pd.read_csv(tmp_path / "h.csv")
    assert sorted(runs["name"].unique()) == ["T S on STID", "tt"] and set(hist["name"]) == {"T S on STID", "tt"}
    out.unlink()
    assert (
        results.main(["--stage", "04", "--root", f"x={tmp_path / 'a'}", "--out", str(out), "--rename", "st=T S"]) == 2
    )
    assert "no run named 'st'" in capsys.readouterr().err and not out.exists()


def test_gates_hold_committed_stage2_runs_to_the_targets():
    committed = pd.DataFrame(
        [
            {
                "file": "stage2_nvidia-h100.csv",
                "batch": "3 at once",
                "name": "+ adaptive embedding",
                "seeds": 3,
                "MAE": 15.75,
                "MAE sd": 0.15,
                "budget s": 417.0,
                "device": "NVIDIA H100",
            },
            {
                "file": "stage2_cpu.csv",
                "batch": "one after another",
                "name": "alternating p3",
                "seeds": 3,
                "MAE": 17.2,
                "MAE sd": 0.2,
                "budget s": 900.0,
                "device": "cpu",
            },
        ]
    )
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


def _export(path, name_seed_mae, seconds_per_epoch=2.0, epochs=3):
    """A run export (python -m stlib.reporting.results) and its histories, as the committed files are."""
    runs, hist = [], []
    for i, (name, seed, mae) in enumerate(name_seed_mae):
        run = f"run{i}-{name}"
        runs.append(
            {
                "batch": "b",
                "run_dir": run,
                "name": name,
                "seed": seed,
                "test_mae": mae,
                "mae_h3": mae - 1,
                "mae_h6": mae,
                "mae_h12": mae + 2,
                "test_rmse": mae * 1.6,
                "test_mape": 10.0,
                "val_mae": mae + 1,
                "best_epoch": epochs - 1,
                "epochs_run": epochs,
                "seconds_per_epoch": seconds_per_epoch,
                "train_seconds": seconds_per_epoch * epochs,
                "params": 1000,
                "time_budget_s": 0.0,
            }
        )
        for e in range(1, epochs + 1):
            hist.append(
                {
                    "batch": "b",
                    "name": name,
                    "seed": seed,
                    "epoch": e,
                    "val_mae": mae + 1 + (e == 1) + (e == epochs),
                    "seconds": seconds_per_epoch,
                    "run_dir": run,
                }
            )
    pd.DataFrame(runs).to_csv(path, index=False)
    pd.DataFrame(hist).to_csv(path.with_name(path.stem + "_history.csv"), index=False)


def test_committed_route_and_time_to_accuracy(tmp_path):
    _export(tmp_path / "stid_cpu.csv", [("stid", 0, 14.4), ("stid", 1, 14.5)], seconds_per_epoch=2.0)
    _export(
        tmp_path / "stage1_x.csv",
        [("start", 0, 16.0), ("start", 1, 16.2), ("tuned", 0, 15.0), ("tuned", 1, 15.4)],
        seconds_per_epoch=6.0,
    )
    _export(tmp_path / "stage2_x.csv", [("alt", s, 14.0 + s / 10) for s in range(3)], seconds_per_epoch=60.0)
    table, baseline = report.committed_route(
        tmp_path,
        {
            "baseline: STID-style": "stid_cpu.csv",
            "03 stage 1 (start)": "stage1_x.csv:start",
            "03 stage 1 (tuned)": "stage1_x.csv",
            "04 stage 2 (alternating)": "stage2_x.csv",
        },
    )
    assert baseline == pytest.approx(14.45)
    r = table.set_index("stage")
    assert r.loc["03 stage 1 (tuned)", "configuration"] == "tuned"  # the file's lowest mean MAE
    assert r.loc["03 stage 1 (start)", "MAE"] == pytest.approx(16.1) and r.loc["03 stage 1 (start)", "seeds"] == 2
    assert pd.isna(r.loc["03 stage 1 (start)", "roadmap low"])  # the roadmap gives no range for the start
    assert r.loc["04 stage 2 (alternating)", "roadmap high"] == pytest.approx(14 * 14.45 / 14.57)
    g = report.gates(table, baseline, peer_mae=14.645).set_index("gate")["passed"]
    assert g.iloc[0] and g["stage 2 beats the baseline"] and not g["stage 2 at least 5 % below the peer STID"]
    with pytest.raises(ValueError, match="no configuration 'nope'"):
        report.committed_route(tmp_path, {"03 stage 1 (tuned)": "stage1_x.csv:nope"})
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        report.committed_route(tmp_path, {"baseline: STID-style": "missing.csv"})

    runs, hist = report.committed(tmp_path, ["stid_cpu.csv", "stage2_*.csv"])
    t = report.time_to_accuracy(runs, hist).set_index("name")
    assert t.loc["stid", "seeds"] == 2 and t.loc["alt", "seeds"] == 3
    assert t.loc["alt", "train minutes"] == pytest.approx(3.0)  # 3 epochs x 60 s
    assert t.loc["alt", "minutes to best"] == pytest.approx(2.0)  # the best validation came at epoch 2
    assert t.loc["alt", "test MAE"] == pytest.approx(14.1)
    ax = reportplots.plot_time_to_accuracy(runs, hist, peer_mae=14.645, peer_minutes=7)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("STAEformer" in s for s in labels) and any("peer STID" in s for s in labels)
    (tmp_path / "stid_cpu_history.csv").unlink()
    with pytest.raises(FileNotFoundError, match="stid_cpu_history.csv"):
        report.committed(tmp_path, ["stid_cpu.csv"])


def test_table_from_export_feeds_the_ablation_summary(tmp_path):
    from stlib.reporting import results
    from stlib.studies import ablation

    _export(
        tmp_path / "s1.csv",
        [("start", 0, 16.0), ("start", 1, 16.4), ("+noise", 0, 15.0), ("+noise", 1, 15.2), ("other", 0, 1.0)],
    )
    runs = pd.read_csv(tmp_path / "s1.csv")
    variants = [ablation.Variant("start", {}, "start"), ablation.Variant("+noise", {}, "alone", (0.3, 0.5))]
    table = ablation.table_from_export(runs, variants)
    assert table["config"].tolist() == ["start", "start", "+noise", "+noise"]  # only the variants, in their order
    s = ablation.summarize(table, variants)
    assert s.loc["+noise", "gain"] == pytest.approx(1.1) and s.loc["+noise", "expected gain"] == "0.3-0.5"
    assert "device" not in s  # an export without a device column: none invented
    # with one, each summary carries the devices its seeds trained on (notebook 05's route reads them)
    table = ablation.table_from_export(runs.assign(device="CPU (AMD EPYC)"), variants)
    assert ablation.summarize(table, variants)["device"].tolist() == ["CPU (AMD EPYC)"] * 2
    assert results.seed_summary(table)["device"].tolist() == ["CPU (AMD EPYC)"] * 2
    with pytest.raises(ValueError, match=r"no committed runs of \['\+depth'\]"):
        ablation.table_from_export(runs, [*variants, ablation.Variant("+depth")])
    with pytest.raises(ValueError, match="not a run export"):
        ablation.table_from_export(runs.drop(columns=["test_mae"]))
    # runs exported under other names are summarised under the variants' names
    named = ablation.table_from_export(runs, variants, names={"start": "other", "+noise": "start"})
    assert named["config"].tolist() == ["start", "+noise", "+noise"] and named["MAE"].tolist() == [1.0, 16.0, 16.4]
    with pytest.raises(ValueError, match=r"no committed runs named \['absent'\]"):
        ablation.table_from_export(runs, variants, names={"start": "absent"})


def _route(**maes):
    """A route table: stage -> (configuration, MAE, sd), 10 epochs each unless `epochs` says otherwise."""
    names = {
        "base": "baseline: STID-style",
        "start": "03 stage 1 (start)",
        "tuned": "03 stage 1 (tuned)",
        "s2": "04 stage 2 (alternating)",
    }
    epochs = maes.pop("epochs", {})
    return pd.DataFrame(
        [
            {"stage": names[k], "configuration": c, "MAE": m, "MAE sd": sd, "seeds": 3, "epochs": epochs.get(k, 10)}
            for k, (c, m, sd) in maes.items()
        ]
    )


def test_route_takes_notebook_03s_choice_and_stage_2s_best_with_space(tmp_path):
    _write_summaries(tmp_path / "p")
    s03 = pd.read_csv(tmp_path / "p" / "03_ablation_summary.csv", index_col=0)
    s03["epochs"] = 10
    s03["chosen"] = [True, False]  # +noise has the lower mean, but notebook 03 kept the start
    s03["why chosen"] = ["'start': no configuration's gain beats the seed spread.", ""]
    s03.to_csv(tmp_path / "p" / "03_ablation_summary.csv")
    s04 = pd.read_csv(tmp_path / "p" / "04_summary.csv", index_col=0)
    s04.loc["stage 1", "MAE"] = 10.0  # temporal only is best, but stage 2 is about spatial attention
    s04.to_csv(tmp_path / "p" / "04_summary.csv")
    table, _ = report.route(tmp_path / "p")
    r = table.set_index("stage")
    assert r.loc["03 stage 1 (tuned)", "configuration"] == "start"
    assert r.loc["04 stage 2 (alternating)", "configuration"] == "+ alternation"
    assert r.loc["03 stage 1 (tuned)", "epochs"] == 10 and pd.isna(r.loc["01 where we stand", "epochs"])
    assert report.stage1_why(tmp_path / "p") == "'start': no configuration's gain beats the seed spread."
    assert report.stage1_why(tmp_path / "nowhere") is None


def test_budget_in_words():
    same = report.budget(_route(base=("stid", 14, 0.1), start=("start", 15, 0.1)))
    assert re.findall(r"\d+", same) == ["10"] and "differ" not in same
    t = _route(base=("stid", 14, 0.1), start=("start", 15, 0.1), epochs={"base": 100, "start": 50})
    differ = report.budget(t)
    assert "differ" in differ and "STID-style 100" in differ and "(start) 50" in differ  # each stage its own budget
    t = _route(
        base=("stid", 14, 0.1),
        start=("start", 15, 0.1),
        tuned=("+d", 14.5, 0.1),
        s2=("alt", 14.6, 0.1),
        epochs={"base": 100},
    )
    assert report.budget(t) in report.story(t) and "ordering" in report.story(t)
    assert report.budget(t.drop(columns="epochs")) == "training budget not recorded"


def _checks(text: str) -> list[tuple[str | None, list[float]]]:
    """Each comparison of ordering()'s sentence: its verdict keyword and the numbers it quotes (MAE, sd, ...)."""
    verdict = {True: "does not beat", False: "beats"}
    return [
        (verdict[" not beat" in c] if " beat" in c else None, _numbers(c)) for c in text.split(": ", 1)[1].split("; ")
    ]


def test_ordering_holds_only_when_every_step_beats_the_spread():
    good = _route(
        base=("stid", 16.0, 0.1), start=("start", 18.0, 0.1), tuned=("+depth", 17.0, 0.1), s2=("alt", 15.0, 0.1)
    )
    holds, text = report.ordering(good)
    assert holds is True and report.budget(good) in text
    assert _checks(text) == [
        ("beats", [17.0, 0.1, 18.0, 0.1]),  # tuned stage 1 against its start
        ("beats", [15.0, 0.1, 17.0, 0.1]),  # stage 2 against stage 1
        ("beats", [16.0, 0.1]),  # stage 2 against the baseline (its MAE quoted above)
    ]
    # stage 1 kept its start: the ordering does not hold, whatever stage 2 does
    kept = _route(
        base=("stid", 16.0, 0.1), start=("start", 18.0, 0.1), tuned=("start", 18.0, 0.1), s2=("alt", 17.0, 0.1)
    )
    holds, text = report.ordering(kept)
    checks = _checks(text)
    assert holds is False and checks[0][1] == [] and "start" in text.split("; ")[0]  # no gain to quote
    assert checks[1] == ("beats", [17.0, 0.1, 18.0, 0.1]) and checks[2][0] == "does not beat"
    assert checks[2][1][:2] == [16.0, 0.1]
    # a gain inside the spread does not count
    close = _route(
        base=("stid", 16.0, 0.1), start=("start", 18.0, 0.3), tuned=("+depth", 17.6, 0.3), s2=("alt", 15.0, 0.1)
    )
    holds, text = report.ordering(close)
    assert holds is False and _checks(text)[0] == ("does not beat", [17.6, 0.3, 18.0, 0.3])
    assert report.ordering(_route(base=("stid", 16.0, 0.1)))[0] is None


def test_story_title_and_report_say_the_budget_and_the_verdict(tmp_path):
    t = _route(
        base=("stid", 21.9, 0.02),
        start=("start", 22.9, 0.1),
        tuned=("start", 22.9, 0.1),
        s2=("+ alternation (T S T S)", 22.6, 0.1),
    )
    why = "'start': no configuration's gain beats the seed spread."
    text = report.story(t, why)
    holds, verdict = report.ordering(t)
    assert holds is False and report.budget(t) in text and why in text and verdict in text
    assert text.index(report.budget(t)) < text.index(why) < text.index(verdict)  # budget, choice, verdict
    title = report.route_title(t)
    assert report.budget(t) in title and "does not hold" in title.splitlines()[1]
    ax = reportplots.plot_route(t, dataset="synthetic")
    assert ax.get_title() == title
    assert all(label.get_text().endswith("10 epochs") for label in ax.get_xticklabels())
    md = report.markdown("default", "synthetic", t, pd.DataFrame(), pd.DataFrame(), summary=text)
    assert f"## In short\n\n{text}" in md and "![route](figures/05_route.png)" in md
    differ = t.assign(epochs=[100, 50, 50, 50])
    assert report.route_title(differ).startswith("Test MAE per stage (epochs differ: under each stage)")


def test_route_names_the_device_the_stages_trained_on(tmp_path):
    from stlib.reporting import figstyle

    out = tmp_path / "p"
    _write_summaries(out)
    for name in ("01_summary.csv", "03_ablation_summary.csv", "04_summary.csv"):
        pd.read_csv(out / name, index_col=0).assign(device="CPU (AMD EPYC)").to_csv(out / name)
    table, _ = report.route(out)
    assert set(table["device"]) == {"CPU (AMD EPYC)"}
    ax = reportplots.plot_route(table, dataset="synthetic")
    assert "Device: CPU (AMD EPYC)" in figstyle.footer_text(ax.figure)
    ax = reportplots.plot_stage_cost(table, dataset="synthetic")
    assert "Device: CPU (AMD EPYC)" in figstyle.footer_text(ax.figure)
    # summaries written before they kept the device: not recorded, not guessed
    _write_summaries(tmp_path / "old")
    table, _ = report.route(tmp_path / "old")
    assert table["device"].isna().all()
    assert "Device: not recorded" in figstyle.footer_text(reportplots.plot_route(table).figure)


def test_route_figure_lists_each_device_once_and_wraps_long_stage_names():
    from stlib.reporting import figstyle

    t = _route(
        base=("stid", 14.1, 0.01),
        start=("start", 15.5, 0.1),
        tuned=("tuned", 15.4, 0.1),
        s2=("+ alternation (T S T S)", 14.2, 0.02),
    )
    t["device"] = ["CPU (x86_64)", "CPU (x86_64), CPU (AMD EPYC)", "CPU (AMD EPYC)", "CPU (x86_64)"]
    t.loc[len(t) - 1, "stage"] = "04 stage 2 on the STID head, STID's recipe (T S)"
    ax = reportplots.plot_route(t, dataset="synthetic")
    assert "Device: CPU (x86_64), CPU (AMD EPYC) " in figstyle.footer_text(ax.figure) + " "
    lines = [line for label in ax.get_xticklabels() for line in label.get_text().split("\n")]
    assert max(len(line) for line in lines) <= 16 and "04 stage 2 on" in lines
    assert ax.figure.get_figwidth() >= 1.35 * len(t) + 3


def test_budgeted_runs_name_the_device_in_words(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    pd.DataFrame(
        {
            "batch": "b",
            "name": "ts",
            "seed": [0, 1],
            "test_mae": [14.1, 14.2],
            "mae_h12": 15.0,
            "test_rmse": 23.0,
            "epochs_run": 300,
            "time_budget_s": 0.0,
            "train_seconds": [2000.0, 2100.0],
            "device": ["x86_64", "CPU (AMD EPYC)"],
        }
    ).to_csv(bench / "stage2_cpu_x.csv", index=False)
    s = report.budgeted_runs(bench)
    assert s["device"].tolist() == ["CPU (x86_64), CPU (AMD EPYC)"]


def test_results_export_merge_keeps_earlier_runs_and_drops_split_ensembles(tmp_path, capsys):
    from stlib.reporting import results

    out, hist = tmp_path / "o.csv", tmp_path / "h.csv"

    def export(root, *extra):
        return results.main(
            ["--stage", "04", "--root", f"x={root}", "--out", str(out), "--histories", str(hist), *extra]
        )

    _fake_budgeted_runs(tmp_path / "a", {"tt": [19.0, 19.2], "ts": [18.0], "kept": [16.0, 16.2]})
    assert export(tmp_path / "a") == 0
    first = pd.read_csv(out)
    first["ensemble_test_mae"] = first["name"].map({"tt": 18.9, "kept": 15.9})  # as --ensemble wrote it
    first.to_csv(out, index=False)
    # another session: ts's seed 0 again, tt's seed 2, a new configuration
    _fake_budgeted_runs(tmp_path / "b", {"ts": [18.5], "tt": [0.0, 0.0, 19.4], "new": [17.0]})
    for seed in (0, 1):
        shutil.rmtree(tmp_path / "b" / "runs" / "04" / f"run-tt-{seed}")
    for _ in range(2):  # a second merge of the same runs replaces them
        assert export(tmp_path / "b", "--merge") == 0
        runs, h = pd.read_csv(out), pd.read_csv(hist)
        assert sorted(runs["run_dir"]) == ["run-kept-0", "run-kept-1", "run-new-0", "run-ts-0"] + [
            f"run-tt-{s}" for s in range(3)
        ]
        assert runs.set_index("name").loc["ts", "test_mae"] == 18.5  # the rerun replaced the earlier seed 0
        assert len(h) == 7 * 4 and sorted(h.groupby("run_dir").size()) == [4] * 7
        ens = runs.groupby("name")["ensemble_test_mae"].first()
        assert ens["kept"] == 15.9 and np.isnan(ens["tt"]) and np.isnan(ens["new"])
        assert "x / tt: seeds in both exports, no ensemble MAE" in capsys.readouterr().err
    assert export(tmp_path / "b") == 0 and len(pd.read_csv(out)) == 3  # without --merge: the new runs alone
    hist.unlink()
    assert export(tmp_path / "b", "--merge") == 2
    assert f"{out} exists but {hist} does not" in capsys.readouterr().err
