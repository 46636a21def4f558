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
