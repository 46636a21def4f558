"""The speed ladder's mechanics (not its timings: benchmarks are scripts, not timed tests)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import tiny_config

from stlib.studies import bench
from stlib.training.device import amp_dtype


def test_ladder_is_cumulative_one_change_per_rung():
    rungs = bench.ladder(torch.device("cpu"), "default", workers=2)
    names = [r for r, _ in rungs]
    assert names[0] == "naive" and names[-1] == "+ validate every 5" and len(rungs) == 7
    naive, last = rungs[0][1], rungs[-1][1]
    assert naive["train.amp"] == "off" and naive["train.loader"] == "dataloader" and naive["train.batch_size"] == 64
    assert last["train.amp"] == "auto" and last["train.batch_size"] == 128 and last["train.loader"] == "device"
    assert last["train.compile"] == "default" and last["train.validate_every"] == 5
    for (_, a), (_, b) in zip(rungs, rungs[1:]):
        changed = {k for k in b if a.get(k) != b[k]}
        assert 1 <= len(changed) <= 3  # one optimisation (DataLoader tuning sets its related knobs together)


def test_cuda_ladder_ends_with_cuda_graphs():
    cpu = bench.ladder(torch.device("cpu"), "default", workers=2)
    cuda = bench.ladder(torch.device("cuda"), "default", workers=2)  # only the device type is read
    assert [n for n, _ in cuda] == [n for n, _ in cpu] + ["+ CUDA graphs"]
    before, last = cuda[-2][1], cuda[-1][1]
    assert last == {**before, "train.compile": "reduce-overhead"}
    assert cuda[3][1]["train.pin_memory"] and not cpu[3][1]["train.pin_memory"]


def test_op_profile_names_the_ops_of_a_rung(tiny):
    cfg = tiny_config(model__name="stid", model__embed_dim=8)
    table = bench.op_profile(cfg, tiny, rung="+ AMP", epochs=1, train_windows=64, top=10)
    assert len(table) == 10 and set(table["rung"]) == {"+ AMP"}
    assert table["self_device_ms"].is_monotonic_decreasing and (table["calls"] > 0).all()
    assert any("addmm" in op or "mm" in op for op in table["op"])  # the MLP's matmuls are there
    with pytest.raises(ValueError, match="unknown rung"):
        bench.op_profile(cfg, tiny, rung="+ warp drive")


def test_device_shares_count_each_kernel_once():
    # a GPU profile lists a kernel's time twice: on the kernel row and on the aten op that launched it
    rows = pd.DataFrame(
        {
            "op": ["aten::mm", "gemm_kernel", "softmax_kernel"],
            "kind": ["op", "kernel", "kernel"],
            "self_device_ms": [3.0, 3.0, 1.0],
        }
    )
    shares = bench.device_shares(rows).set_index("op")["device_share"]
    assert shares["gemm_kernel"] == 0.75 and shares["softmax_kernel"] == 0.25 and shares["aten::mm"] == 0.75
    cpu = bench.device_shares(rows.assign(kind="op"))["device_share"]  # on CPU every row is an op
    assert abs(cpu.sum() - 1.0) < 1e-12


def test_subset_keeps_full_training_statistics(tiny):
    small = bench.subset(tiny, 64, 32)
    assert len(small.splits["train"]) == 64 and len(small.splits["val"]) == 32
    assert small.mean == tiny.mean and small.std == tiny.std


def test_flops_per_sample_counts_the_matmuls(tiny):
    cfg = tiny_config(model__name="stid", model__embed_dim=8, model__num_layers=1, model__dropout=0.0)
    fps = bench.flops_per_sample(cfg, tiny, torch.device("cpu"), batch=4)
    n, e, h = tiny.num_sensors, 8, 32  # hidden = 4 * embed
    forward = 2 * n * (12 * e + 2 * h * h + h * 12)  # series, two MLP matmuls, head
    assert forward * 2 < fps < forward * 3.5  # backward costs about twice the forward


def test_matmul_peak_is_the_matmul_flops_counted_over_the_time_taken(monkeypatch):
    """Against an independent count: the FLOPs torch's own counter saw in the timed matmuls, over a clock that ticks
    10 ms a reading (so the time is known exactly); the 3 warm-up matmuls come before the clock starts."""
    from torch.utils.flop_counter import FlopCounterMode

    readings = []
    clock = SimpleNamespace(perf_counter=lambda: readings.append(0.01 * len(readings)) or readings[-1])
    monkeypatch.setattr(bench, "time", clock)  # bench's clock only
    n = 32
    with FlopCounterMode(display=False) as counter:
        peak = bench.matmul_peak(torch.device("cpu"), torch.float32, n=n, seconds=0.05)
    timed = counter.get_total_flops() - 3 * 2 * n**3
    assert timed > 0 and peak == pytest.approx(timed / (readings[-1] - readings[0]))


def test_speed_ladder_end_to_end(tiny, tmp_path):
    cfg = tiny_config(model__name="stid", model__embed_dim=8)
    # compile is exercised in test_train; here it would only add compilation time
    rungs = [(n, {**o, "train.compile": "off"}) for n, o in bench.ladder(torch.device("cpu"), workers=1)]
    result = bench.speed_ladder(
        cfg, tiny, repeats=1, epochs=2, train_windows=128, val_windows=64, rungs=rungs, progress=lambda *_: None
    )
    t = result["table"]
    assert list(t["rung"]) == [r for r, _ in rungs]
    assert t["speedup"].iloc[0] == pytest.approx(1.0) and (t["s_per_epoch"] > 0).all()
    assert t["validation_s"].iloc[-1] < t["validation_s"].iloc[-2]  # validate every 5 amortises validation
    assert result["raw"]["repeat"].nunique() == 1 and set(result["raw"]["epoch"]) == {1, 2}
    js, md = bench.save(result, tmp_path)
    payload = json.loads(js.read_text())
    assert payload["table"][0]["rung"] == "naive" and "flops_per_sample" in payload
    assert "| naive |" in md.read_text()


def test_a_failing_rung_is_reported_and_the_others_still_run(tiny, tmp_path):
    cfg = tiny_config(model__name="stid", model__embed_dim=8)
    base = {"train.compile": "off", "train.amp": "off", "train.validate_every": 1}
    rungs = [
        ("naive", base),
        ("+ broken", {**base, "train.device": "cuda:7"}),
        ("+ AMP", {**base, "train.amp": "auto"}),
    ]
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    said = []
    result = bench.speed_ladder(
        cfg, tiny, repeats=2, epochs=2, train_windows=64, val_windows=32, rungs=rungs, progress=said.append
    )
    assert list(result["table"]["rung"]) == ["naive", "+ AMP"]
    assert "+ broken" in result["failed"] and "ConfigError" in result["failed"]["+ broken"]
    assert sum("FAILED" in line for line in said) == 1  # tried once, not once per repeat
    assert "+ broken: failed, not measured" in bench.to_markdown(result)
    with pytest.raises(Exception, match="cuda"):  # a broken naive rung leaves nothing to compare: it raises
        bench.speed_ladder(
            cfg,
            tiny,
            repeats=1,
            epochs=2,
            train_windows=64,
            val_windows=32,
            rungs=rungs[1:2] + rungs,
            progress=lambda *_: None,
        )


def test_accuracy_guard_compares_naive_and_fastest(tiny):
    cfg = tiny_config(model__name="stid", model__embed_dim=8)
    guard = bench.accuracy_guard(cfg, tiny, epochs=1)
    assert list(guard["rung"]) == ["naive", "+ validate every 5"]
    assert guard["vs_naive"].iloc[0] == 0.0


def test_slug_and_device_name():
    assert bench.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert bench.slug(bench.device_name(torch.device("cpu"))) == "cpu"


def test_peer_comparison_interleaves_our_runners(tiny):
    from stlib.config import load_profile
    from stlib.paths import REPO_ROOT

    profile = load_profile(REPO_ROOT / "params" / "default.yaml")
    runners = {k: v for k, v in bench.PEER_RUNNERS.items() if "compiled" not in k}
    said = []
    table = bench.peer_comparison(profile, tiny, repeats=2, epochs=2, runners=runners, progress=said.append)
    assert list(table["runner"]) == list(runners) and len(said) == 4
    auto = amp_dtype("auto", torch.device("cpu"))  # bf16 where this CPU has it natively, else full precision
    assert (table["batch_size"] == 64).all() and list(table["amp"]) == ["off", "bfloat16" if auto else "off"]
    assert all(len(r) == 2 for r in table["repeats_s"]) and (table["train_s_per_epoch"] > 0).all()
    assert "faster than peer" not in table  # the peer's figure is only comparable on pems08-tail


def test_speed_ladder_alternates_the_rung_order_between_repeats(tiny):
    """naive, AMP, AMP, naive, naive, AMP: warm-up and drift over the process hit both ends of the ladder."""
    cfg = tiny_config(model__name="stid", model__embed_dim=8)
    base = {"train.compile": "off", "train.amp": "off", "train.validate_every": 1}
    rungs = [("naive", base), ("+ AMP", {**base, "train.amp": "auto"})]
    said = []
    result = bench.speed_ladder(
        cfg, tiny, repeats=3, epochs=2, train_windows=64, val_windows=32, rungs=rungs, progress=said.append
    )
    ran = [line.split()[2] for line in said]
    assert ran == ["naive", "+", "+", "naive", "naive", "+"]
    assert list(result["table"]["rung"]) == ["naive", "+ AMP"]  # the table keeps the ladder's order


def test_time_from_a_saved_ladder(tmp_path):
    saved = tmp_path / "speed_cpu.json"
    saved.write_text(
        json.dumps(
            {
                "wall_seconds": 1000.0,
                "table": [{}] * 6,
                "failed": {"+ x": "e"},
                "repeats": 2,
                "epochs_per_fit": 3,
                "train_windows_measured": 640,
            }
        )
    )
    assert bench.previous_seconds(saved, fits=14, epochs=3, train_windows=1280) == pytest.approx(2000.0)
    assert bench.previous_seconds(tmp_path / "none.json", 14, 3, 1280) is None
    saved.write_text("{")
    assert bench.previous_seconds(saved, 14, 3, 1280) is None


def test_cli_says_up_front_what_it_runs_and_each_fit_the_time_left(tmp_path, monkeypatch, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(
        "data: {name: synthetic, num_sensors: 6, num_days: 3}\nmodel: {name: stid, embed_dim: 8}\ntrain: {epochs: 1}\n"
    )
    base = {"train.compile": "off", "train.amp": "off", "train.validate_every": 1, "train.loader": "device"}
    monkeypatch.setattr(bench, "ladder", lambda *a, **k: [("naive", base), ("+ AMP", {**base, "train.amp": "auto"})])
    monkeypatch.setattr(bench, "matmul_peak", lambda *a, **k: 1e9)
    out = tmp_path / "bench"
    assert (
        bench.main(
            [
                "--params",
                str(params),
                "--out",
                str(out),
                "--repeats",
                "1",
                "--epochs",
                "2",
                "--train-windows",
                "64",
                "--val-windows",
                "32",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == (
        "speed ladder: 2 rungs x 1 repeats = 2 fits of 2 epochs each, on 64 training and 32 validation windows"
    )
    assert lines[1].startswith("time: not known yet")
    assert "(fit 1/2: " in lines[2] and " left)" in lines[2] and "(fit 2/2: " in lines[3] and "the last fit" in lines[3]
    assert (
        bench.main(
            [
                "--params",
                str(params),
                "--out",
                str(out),
                "--repeats",
                "1",
                "--epochs",
                "2",
                "--train-windows",
                "64",
                "--val-windows",
                "32",
            ]
        )
        == 0
    )
    assert "in all, scaled from " in capsys.readouterr().out.splitlines()[1]  # the first ladder's time, rescaled


def test_attention_ab_times_each_attn_short_interleaved(tiny):
    said = []
    table = bench.attention_ab(
        tiny_config(), tiny, shorts=(0, 12), repeats=2, epochs=2, train_windows=64, val_windows=32, progress=said.append
    )
    assert [line.split()[3] for line in said] == ["0", "12", "12", "0"]  # the second repeat in reverse order
    assert table["attn_short"].tolist() == [0, 12] and table["speed_up"].iloc[0] == 1.0
    assert all(len(r) == 2 for r in table["repeats_s"])
    assert table["windows_per_s"].tolist() == pytest.approx([64 / s for s in table["train_s_per_epoch"]])
    assert table["model"].iloc[0] == "encdec d16 h2 enc1 dec1 batch 64"
