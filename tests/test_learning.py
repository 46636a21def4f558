"""The learning curve's tables: spans per model over seeds, the gap with its verdict, the log-days trend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlib.reporting import figstyle, learning


def _export(mae):
    """A run export: {(name, days or None): [test MAE per seed]}."""
    rows = [
        {"name": name, "seed": s, "test_mae": v, "train_days": days}
        for (name, days), vals in mae.items()
        for s, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


MODELS = {"stid_converged": "STID", "stage2_converged": "stage 2"}


def test_curve_groups_seeds_by_model_and_span_with_the_full_span_named():
    export = _export(
        {
            ("stid_converged_d3", 3.0): [17.0, 17.2, 17.4],
            ("stid_converged", None): [14.1, 14.2, 14.3],
            ("stage2_converged_d3", 3.0): [16.0, 16.5, 17.0],
        }
    )
    t = learning.curve(export, 9.92, MODELS).set_index(["model", "days"])
    assert t.loc[("STID", 3.0), "MAE"] == pytest.approx(17.2) and t.loc[("STID", 3.0), "MAE sd"] == pytest.approx(0.2)
    assert t.loc[("STID", 9.92), "seeds"] == 3 and ("stage 2", 3.0) in t.index
    with pytest.raises(ValueError, match="runs of no model.*'other'"):
        learning.curve(_export({("other", 3.0): [1.0]}), 9.92, MODELS)


def test_gap_is_a_minus_b_with_the_verdict_rule():
    export = _export(
        {
            ("stid_converged_d3", 3.0): [17.0, 17.2, 17.4],  # sd 0.2
            ("stage2_converged_d3", 3.0): [16.0, 16.1, 16.2],  # sd 0.1: 1.1 below, beyond 0.3
            ("stid_converged_d6", 6.0): [15.0, 15.2, 15.4],
            ("stage2_converged_d6", 6.0): [15.0, 15.1, 15.2],  # 0.1 below, within 0.3
        }
    )
    g = learning.gap(learning.curve(export, 9.92, MODELS), "stage 2", "STID").set_index("days")
    assert g.loc[3.0, "gap"] == pytest.approx(-1.1) and g.loc[3.0, "spread"] == pytest.approx(0.3)
    assert g.loc[3.0, "verdict"] == "beats" and g.loc[6.0, "verdict"] == "is within the seed spread of"


def test_trend_recovers_each_form_and_extrapolates():
    days = np.array([3.0, 6.0, 9.0, 9.92])
    curves = {"STID": 20.0 - 2.0 * np.log(days), "stage 2": 13.0 + 12.0 / days}  # one form each
    table = pd.concat(
        pd.DataFrame({"model": m, "days": days, "MAE": y, "MAE sd": 0.1, "seeds": 3}) for m, y in curves.items()
    )
    t = learning.trend(table).set_index(["model", "form"])
    f = t.loc[("STID", "ln(days)")]
    assert f["c1"] == pytest.approx(-2.0) and f["next doubling"] == pytest.approx(-2.0 * np.log(2))
    assert f["at 37.2 days"] == pytest.approx(20.0 - 2.0 * np.log(37.2)) and f["largest residual"] < 1e-9
    f = t.loc[("stage 2", "1/days")]  # levels off at c0
    assert (f["c0"], f["c1"], f["at 37.2 days"]) == pytest.approx((13.0, 12.0, 13.0 + 12.0 / 37.2))
    assert f["next doubling"] == pytest.approx(12.0 / 19.84 - 12.0 / 9.92) and f["largest residual"] < 1e-9
    assert t.loc[("stage 2", "ln(days)"), "largest residual"] > 0.1  # the wrong form shows in its residual
    ax = learning.plot_curve(table, learning.trend(table), dataset="pems08-tail")
    assert "Unit: vehicles/5 min" in figstyle.footer_text(ax.figure)  # the dataset's unit, known by its name
    labels = ax.get_legend_handles_labels()[1]
    assert sum("extrapolated" in s for s in labels) == 4 and any("14.21" in s for s in labels)
    assert any("linear in 1/days" in s for s in labels)


def test_comparison_labels_names_keeps_the_order_and_marks_the_target():
    export = _export(
        {
            ("s2ctx", None): [13.80, 13.90, 14.00],
            ("stid_ctx_s0", None): [13.95],
            ("stid_ctx", None): [14.05, 14.15],  # seeds 1, 2 of the same configuration under another name
            ("stage2_converged", None): [14.10, 14.15, 14.20],
            ("other", None): [9.0],
        }
    )
    configs = {
        "s2ctx": "stage 2 + ctx",
        "stid_ctx_s0": "STID + ctx",
        "stid_ctx": "STID + ctx",
        "stage2_converged": "s2",
    }
    t = learning.comparison(export, configs, target=13.91)
    assert list(t.index) == ["stage 2 + ctx", "STID + ctx", "s2"] and t.loc["STID + ctx", "seeds"] == 3
    assert t.loc["STID + ctx", "MAE"] == pytest.approx(14.05) and list(t["meets target"]) == [True, False, False]
    line = learning.verdicts(t, [("stage 2 + ctx", "STID + ctx")])[0]
    assert line.startswith("stage 2 + ctx (13.900 ± 0.100, 3 seeds) is within the seed spread of STID + ctx (14.050")
    assert line.endswith("3 seeds): difference -0.150, spread 0.200")
    none = learning.comparison(export, {"s2ctx": "a", "nope": "x"}, target=13.91)  # no runs (yet, or misspelt)
    assert none.loc["x", "seeds"] == 0 and np.isnan(none.loc["x", "MAE"]) and not none.loc["x", "meets target"]
    assert learning.verdicts(none, [("a", "x")]) == ["a (13.900 ± 0.100, 3 seeds) vs x (no runs yet): spread unknown"]
    one = pd.DataFrame({"seeds": [1, 3], "MAE": [13.954, 13.945], "MAE sd": [np.nan, 0.02]}, index=["s2", "stid"])
    assert learning.verdicts(one, [("s2", "stid")]) == [
        "s2 (13.954, 1 seed) vs stid (13.945 ± 0.020, 3 seeds): spread unknown, difference +0.009"
    ]


def test_context_windows_counts_the_windows_a_lag_leaves_partly_missing():
    from stlib.data import load_dataset

    ds = load_dataset("synthetic", num_sensors=4, num_days=21)
    t = learning.context_windows(ds, {"last hour": [], "a week back": [ds.steps_per_day * 7]})
    week = ds.steps_per_day * 7
    assert t.loc["last hour", "train partly missing"] == 0 and t.loc["a week back", "input steps"] == 36
    assert t.loc["a week back", "train partly missing"] == int((ds.splits["train"] < week).sum()) > 0
    assert t.loc["a week back", "test windows"] == len(ds.splits["test"])


def test_plot_comparison_draws_every_configuration_and_the_target():
    t = pd.DataFrame(
        {"seeds": [3, 0], "MAE": [13.9, np.nan], "MAE sd": [0.02, np.nan], "ensemble MAE": [13.8, np.nan]},
        index=["with context", "not yet run"],
    )
    ax = learning.plot_comparison(t, target=13.91)
    assert "Unit: not recorded" in figstyle.footer_text(ax.figure)  # no dataset named: said so
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["with context", "not yet run"]
    assert ax.get_ylim()[0] < 0 < 1 < ax.get_ylim()[1]  # both rows inside the axes, the one without runs too
    texts = [a.get_text() for a in ax.texts]
    assert "13.900 ± 0.020 (3 seeds)" in texts and "no runs yet" in texts
    assert any(list(line.get_xdata()) == [13.91, 13.91] for line in ax.lines)  # the target's vertical line


def test_study_reads_the_notebook_parameters_and_writes_the_report_sections(tmp_path):
    from stlib.data import load_dataset
    from stlib.reporting.report import table_markdown

    ds = load_dataset("synthetic", num_sensors=4, num_days=21)
    full = (ds.train_rows.stop - ds.train_rows.start) / ds.steps_per_day
    lc = {(f"stid_converged_d{d}", float(d)): [20 - d * 0.5 + s * 0.1 for s in range(3)] for d in (3, 6, 9)}
    lc |= {("stid_converged", None): [13.0, 13.1, 13.2], ("stage2_converged", None): [12.9, 13.0, 13.1]}
    lc = _export(lc).assign(params=100, epochs_run=300, batch="2 at once")
    lc.assign(train_seconds=600 + 60 * lc["seed"]).to_csv(tmp_path / "lc.csv", index=False)
    _export({("s2ctx", None): [12.0, 12.1, 12.2]}).to_csv(tmp_path / "ctx.csv", index=False)
    p = dict(learning_curve="lc.csv", learning_models=MODELS, learning_gap=["stage 2", "STID"])
    p |= dict(contexts={"last hour": [], "a week": [ds.steps_per_day * 7]}, context=["ctx.csv", "lc.csv"])
    p |= dict(context_configs={"s2ctx": "ctx", "stage2_converged": "none"}, context_pairs=[["ctx", "none"]])
    s = learning.study(p | {"context_target": 12.5}, ds, tmp_path)
    assert s["curve"].set_index(["model", "days"]).loc[("STID", full), "MAE"] == pytest.approx(13.1)
    assert set(s["trend"]["model"]) == {"STID"}  # stage 2 has one span: no line through it
    assert s["gap"].set_index("days").loc[full, "gap"] == pytest.approx(-0.1)
    assert s["verdicts"][0].startswith("ctx (12.100 ± 0.100, 3 seeds) beats none (13.000 ± 0.100, 3 seeds)")
    text = learning.markdown(s, table_markdown)
    assert (
        "| STID | 3.000 | 3 | 18.600 | 0.100 | 300 | 12.000 | 100 | 2 at once |" in text
    )  # the slowest seed and "| ctx | 3 | 12.100 |" in text
    assert text.index("## When attention pays") < text.index("## Context") < text.index("train partly missing")
    assert learning.markdown(learning.study({}, ds, tmp_path), table_markdown) == ""
    p["context_configs"] |= {"never_run": "not yet"}
    row = next(
        r for r in learning.markdown(learning.study(p, ds, tmp_path), table_markdown).split("\n") if "not yet" in r
    )
    assert "NA" not in row and row.startswith("| not yet | 0 |")  # a row without runs: blank cells


def test_handover_replays_the_stem_rule_on_the_validations():
    runs = {"stalls": [10, 9, 9.5, 9.6, 9.7, 8.5, 8.7, 8.9], "never": [10, 9, 8, 7, 6, 6.5, 6.6], "short": [10, 9]}
    hist = pd.concat(
        pd.DataFrame({"run_dir": r, "epoch": range(1, len(v) + 1), "val_mae": v}) for r, v in runs.items()
    ).sample(frac=1.0, random_state=0)  # epoch order is the function's business
    h = learning.handover(hist, stem_epochs=5, stem_patience=2).set_index("run_dir")
    # stalls: 2 validations without gain before epoch 5 (9.5, 9.6 after 9) -> the blocks join at 5, and win by 0.5
    assert h.loc["stalls", ["blocks joined", "stem val", "blocks val", "blocks epochs"]].tolist() == [5, 9, 8.5, 4]
    assert h.loc["stalls", "margin"] == pytest.approx(-0.5)
    assert h.loc["never", "blocks joined"] == 6 and h.loc["never", "margin"] == pytest.approx(0.5)  # after stem_epochs
    assert pd.isna(h.loc["short", "blocks joined"]) and np.isnan(h.loc["short", "margin"])
    assert h.loc["short", "blocks epochs"] == 0


def test_study_with_a_stem_summarises_the_handover_per_span(tmp_path):
    from stlib.config import load_profile
    from stlib.data import load_dataset
    from stlib.reporting.report import table_markdown

    ds = load_dataset("synthetic", num_sensors=4, num_days=21)
    runs = pd.DataFrame(
        {"name": ["stage2_converged_d3"] * 2 + ["stid_converged_d3"], "seed": [0, 1, 0], "test_mae": [15.0, 15.2, 15.1]}
    ).assign(train_days=3.0, model=["alternating", "alternating", "stid"], run_dir=["a", "b", "c"])
    runs.to_csv(tmp_path / "lc.csv", index=False)
    p = dict(learning_curve="lc.csv", learning_models=MODELS)
    with pytest.raises(FileNotFoundError, match="lc_history.csv: the histories of lc.csv are missing"):
        learning.study(p, ds, tmp_path, stem=(3, 1))
    val = {"a": [10, 9, 9.5, 9.6], "b": [10, 10.5, 9.8, 9.9], "c": [10, 9, 8, 7]}  # b stalls: its blocks join at 3
    pd.concat(pd.DataFrame({"run_dir": r, "epoch": range(1, 5), "val_mae": v}) for r, v in val.items()).to_csv(
        tmp_path / "lc_history.csv", index=False
    )
    h = learning.study(p, ds, tmp_path, stem=(3, 1))["handover"]  # STID's run c has no stem: not counted
    assert h[["days", "runs", "blocks joined", "blocks taken"]].values.tolist() == [[3.0, 2, 3.5, 1]]
    assert h["margin"].iloc[0] == pytest.approx(((9.6 - 9) + (9.8 - 10)) / 2)
    assert "Did validation take the attention blocks?" in learning.markdown(
        learning.study(p, ds, tmp_path, stem=(3, 1)), table_markdown
    )
    profile = load_profile("params/pems08_tail_cpu.yaml")
    assert learning.stem_rule(profile, ["stid_converged", "stage2_converged"]) == (200, 20)
    assert learning.stem_rule(profile, ["stid_converged"]) is None


def test_attention_runs_script_builds_each_kind_of_run_and_resumes(tmp_path):
    """scripts/attention_runs.sh: each queue line becomes its stlib.train command (a fake python records them), a
    stopped run is resumed, a finished one skipped, a bad line named; the queue is emptied."""
    import os
    import shlex
    import subprocess

    from stlib.config import load_profile, parse_override
    from stlib.paths import REPO_ROOT

    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    fake = tmp_path / "fakepy"
    fake.write_text(f'#!/bin/bash\necho "$@" >> "{calls}"\n')
    fake.chmod(0o755)
    for stage, run, done in (
        ("29", "x-stage2-s1-stage2_converged_d6-ab", False),
        ("ctx", "y-stid-s2-stid_ctx-cd", True),
    ):
        (out / "runs" / stage / run).mkdir(parents=True)
        if done:
            (out / "runs" / stage / run / "metrics.json").write_text("{}")
    queue = tmp_path / "q.txt"
    lines = ["lc stid_converged 3 0", "lc stid_converged all 1", "lc stage2_converged 6 1", "ctx s2ctx_dw_p12 0"]
    lines += ["ctx stid_ctx 2", "syn stid_ctx 0", "what x 0", "syn nope 0"]
    queue.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHON": str(fake), "WORKERS": "1", "SET": "train.ema=0.99"}
    p = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "attention_runs.sh"), str(out), str(queue)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert queue.read_text() == "" and "unknown kind 'what'" in p.stderr and "unknown configuration 'nope'" in p.stderr
    assert "ctx stid_ctx s2: done in" in p.stdout
    got = [shlex.split(c)[2:] for c in calls.read_text().splitlines()]  # after "-m stlib.train"
    assert len(got) == 5 and got[2] == ["--resume", str(out / "runs" / "29" / "x-stage2-s1-stage2_converged_d6-ab")]
    profile = load_profile(REPO_ROOT / "params" / "pems08_tail_cpu.yaml")
    cfgs = []
    for args in got[:2] + got[3:]:
        preset = args[args.index("--preset") + 1]
        sets = dict(parse_override(args[i + 1]) for i, a in enumerate(args) if a == "--set")
        stage = args[args.index("--stage") + 1]
        cfgs.append(profile.run_config(preset=preset, overrides=sets, stage=stage))
    d3, dall, s2ctx, syn = cfgs
    assert (d3.data.train_days, d3.name, d3.train.seed, d3.train.ema) == (3.0, "stid_converged_d3", 0, 0.99)
    assert dall.data.train_days is None and dall.name == "stid_converged_dall" and dall.stage == "29"
    assert s2ctx.data.lags == [288, 2016] and s2ctx.model.patch == 12 and s2ctx.train.time_budget_s == 3540
    assert (syn.data.name, syn.data.num_sensors, syn.data.lags, syn.train.time_budget_s) == (
        "synthetic",
        24,
        [288, 2016],
        0,
    )
    assert all(c.train.amp == "off" and c.train.early_stop_patience == 60 and c.train.threads == 1 for c in cfgs)
