"""The training loop: every knob changes what it should; records; determinism; the command line."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from stlib.config import ConfigError, load
from stlib.data import make_batches
from stlib.models import build_model
from stlib.reporting import results
from stlib.train import Plateau, compute_loss, cosine_factor, fit, main, warmup_factor


def state_equal(a, b, atol=0.0):
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


def test_fit_writes_a_complete_run_record(tiny, tmp_path):
    run = fit(tiny_config(train__save_checkpoint=True), dataset=tiny)
    files = {p.name for p in run.dir.iterdir()}
    assert {"config.yaml", "history.csv", "metrics.json", "env.json", "best.pt"} <= files
    m = json.loads((run.dir / "metrics.json").read_text())
    assert set(m["test"]["by_horizon"]) == {"3", "6", "12"}
    assert {"mae", "rmse", "mape"} <= set(m["test"]) and m["best_epoch"] in (1, 2)
    assert {"torch", "device", "threads"} <= set(json.loads((run.dir / "env.json").read_text()))
    hist = pd.read_csv(run.dir / "history.csv")
    for col in [
        "train_loss",
        "val_mae",
        "lr",
        "seconds",
        "data_s",
        "forward_s",
        "backward_s",
        "optimizer_s",
        "validation_s",
        "samples_per_s",
        "peak_mem_mb",
    ]:
        assert col in hist and hist[col].notna().all(), col
    ledger = results.ledger()
    assert len(ledger) == 1 and ledger.loc[0, "run_id"] == run.run_id
    assert ledger.loc[0, "test_mae"] == pytest.approx(m["test"]["mae"], abs=1e-4)
    fit(tiny_config(model__name="last_value"), dataset=tiny)
    assert len(results.ledger()) == 2  # appended, not overwritten
    assert set(results.runs()["model"]) == {"encdec", "last_value"}


def test_best_checkpoint_reproduces_test_metrics(tiny):
    run = fit(tiny_config(train__save_checkpoint=True, train__epochs=3), dataset=tiny)
    ckpt = torch.load(run.dir / "best.pt")
    assert ckpt["epoch"] == run.metrics["best_epoch"]
    model = build_model(run.config.model, tiny)
    model.load_state_dict(ckpt["model"])
    run.model = model
    pred, true = run.predict("test")
    mask = true != 0
    assert np.abs(pred - true)[mask].mean() == pytest.approx(run.metrics["test"]["mae"], rel=1e-4)


def test_two_runs_same_seed_identical_metrics(tiny):
    a = fit(tiny_config(train__seed=3), dataset=tiny)
    b = fit(tiny_config(train__seed=3), dataset=tiny)
    c = fit(tiny_config(train__seed=4), dataset=tiny)
    assert a.metrics["test"] == b.metrics["test"]
    assert a.metrics["test"]["mae"] != c.metrics["test"]["mae"]


def test_training_lowers_validation_error(tiny):
    run = fit(tiny_config(train__epochs=4, model__name="stid"), dataset=tiny)
    assert run.history["val_mae"].iloc[-1] < run.history["val_mae"].iloc[0]


def test_baselines_train_nothing(tiny):
    run = fit(tiny_config(model__name="historical_average"), dataset=tiny)
    assert run.metrics["epochs_run"] == 0 and run.history.empty
    assert math.isfinite(run.metrics["test"]["mae"])


def test_accumulation_matches_the_bigger_batch(tiny_full):
    kw = dict(model__dropout=0.0, model__use_denoising=False, train__epochs=1, train__grad_clip=0.0)
    big = fit(tiny_config(train__batch_size=64, **kw), dataset=tiny_full)
    acc = fit(tiny_config(train__batch_size=32, train__accumulation_steps=2, **kw), dataset=tiny_full)
    small = fit(tiny_config(train__batch_size=32, **kw), dataset=tiny_full)
    assert state_equal(big.model.state_dict(), acc.model.state_dict(), atol=1e-5)
    assert not state_equal(big.model.state_dict(), small.model.state_dict(), atol=1e-5)


def test_masked_targets_give_zero_gradient():
    pred = torch.randn(2, 12, 3, 1, requires_grad=True)
    y = torch.rand(2, 12, 3, 1) * 100 + 1
    y[0, :, 1] = 0.0  # sensor 1 missing in window 0
    loss = compute_loss(pred, y, 50.0, 20.0, tiny_config().train)
    loss.backward()
    assert torch.all(pred.grad[0, :, 1] == 0)
    assert torch.all(pred.grad[1, :, 1] != 0)


def test_bf16_loss_close_to_fp32(tiny):
    torch.manual_seed(0)
    model = build_model(tiny_config(model__d_model=32).model, tiny).eval()
    x, y = next(iter(make_batches(tiny, "train", 32)))
    tc = tiny_config().train
    with torch.no_grad():
        fp32 = compute_loss(model(x), y, tiny.mean, tiny.std, tc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = compute_loss(model(x), y, tiny.mean, tiny.std, tc)
    assert bf16.item() == pytest.approx(fp32.item(), rel=0.02)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_modes_train(tiny, amp):
    run = fit(tiny_config(train__amp=amp), dataset=tiny)
    assert run.metrics["amp"] in ("bfloat16", "float16")
    assert math.isfinite(run.metrics["test"]["mae"])
    assert "skipped_steps" in run.history


def test_dataloader_path_matches_device_path(tiny):
    a = fit(tiny_config(train__loader="device"), dataset=tiny)
    b = fit(tiny_config(train__loader="dataloader", train__num_workers=1, train__prefetch_factor=2), dataset=tiny)
    assert a.metrics["test"]["mae"] == pytest.approx(b.metrics["test"]["mae"], rel=1e-5)


@pytest.mark.slow
def test_compile_runs(tiny):
    run = fit(tiny_config(train__compile="default", train__epochs=1, model__name="stid"), dataset=tiny)
    ref = fit(tiny_config(train__epochs=1, model__name="stid"), dataset=tiny)
    assert run.metrics["test"]["mae"] == pytest.approx(ref.metrics["test"]["mae"], rel=1e-3)


def test_validate_every(tiny):
    run = fit(tiny_config(train__epochs=5, train__validate_every=2), dataset=tiny)
    validated = run.history["val_mae"].notna().tolist()
    assert validated == [False, True, False, True, True]  # every 2nd epoch and the last
    assert (run.history.loc[~run.history["val_mae"].notna(), "validation_s"] == 0).all()


def test_warmup_ramps_lr(tiny):
    run = fit(tiny_config(train__warmup_steps=1000, train__epochs=2), dataset=tiny)
    n_steps = len(make_batches(tiny, "train", 64))
    assert run.history["lr"].tolist() == pytest.approx([0.003 * n_steps / 1000, 0.003 * 2 * n_steps / 1000])
    assert warmup_factor(0, 0) == 1.0 and warmup_factor(4, 10) == 0.5 and warmup_factor(50, 10) == 1.0


def test_drop_last_skips_the_partial_batch(tiny):
    n = len(tiny.splits["train"])
    assert n % 64  # a partial last batch exists
    for drop, steps in ((False, -(-n // 64)), (True, n // 64)):  # optimizer steps, counted through the warmup
        run = fit(tiny_config(train__warmup_steps=1000, train__epochs=1, train__drop_last=drop), dataset=tiny)
        assert run.history["lr"].tolist() == pytest.approx([0.003 * steps / 1000])
    with pytest.raises(ConfigError, match="train.drop_last"):
        fit(tiny_config(train__batch_size=n + 1, train__drop_last=True), dataset=tiny)


def test_multistep_and_cosine_schedules(tiny):
    run = fit(
        tiny_config(train__scheduler="multistep", train__milestones=[1, 2], train__gamma=0.5, train__epochs=3),
        dataset=tiny,
    )
    assert run.history["lr"].tolist() == pytest.approx([0.003, 0.0015, 0.00075])
    assert cosine_factor(0, 100, 0.1) == 1.0 and cosine_factor(100, 100, 0.1) == pytest.approx(0.1)


def test_time_budget_stops_at_the_first_epoch_end_past_it(tiny):
    run = fit(tiny_config(train__epochs=50, train__time_budget_s=1e-6, train__validate_every=5), dataset=tiny)
    assert len(run.history) == 1 and run.metrics["stopped_by"] == "time budget"
    assert not math.isnan(run.history["val_mae"].iloc[0])  # the last epoch is validated, off schedule too
    full = fit(tiny_config(train__epochs=2), dataset=tiny)
    assert len(full.history) == 2 and full.metrics["stopped_by"] == "epochs"


def test_cosine_anneals_over_the_time_budget():
    assert cosine_factor(1, 1000, 0.0, time_frac=0.5) == pytest.approx(0.5)  # time is further along
    assert cosine_factor(900, 1000, 0.0, time_frac=0.5) == pytest.approx(cosine_factor(900, 1000, 0.0))
    assert cosine_factor(1, 1000, 0.1, time_frac=1.7) == pytest.approx(0.1)  # past the budget: the floor


def test_budgeted_cosine_run_ends_at_the_floor(tiny):
    # a budget spent within the first steps: every later step is at the floor, whatever epochs says
    run = fit(
        tiny_config(train__epochs=50, train__time_budget_s=1e-6, train__scheduler="cosine", train__min_lr=1e-5),
        dataset=tiny,
    )
    assert run.history["lr"].iloc[-1] == pytest.approx(1e-5)


def test_plateau_matches_torch_reduce_lr_on_plateau():
    metrics = [5, 4, 4.5, 4.2, 4.1, 4.3, 3.0, 3.5, 3.6, 3.7, 3.8]
    ours, lr = Plateau(patience=2, factor=0.5, min_lr=0.0), 1.0
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    for m in metrics:
        lr = ours.step(m, lr)
        ref.step(m)
        assert lr == pytest.approx(opt.param_groups[0]["lr"])
    assert lr < 1.0


def test_plateau_scheduler_cuts_lr_in_training(tiny):
    run = fit(
        tiny_config(train__scheduler="plateau", train__patience=1, train__lr=1e-9, train__epochs=4), dataset=tiny
    )  # lr so small the model cannot improve: every validation is a plateau
    assert run.history["lr"].iloc[-1] < 1e-9


def test_noise_augmentation_changes_training_only(tiny):
    plain = fit(tiny_config(train__epochs=1), dataset=tiny)
    noisy = fit(tiny_config(train__epochs=1, train__noise_std=0.5), dataset=tiny)
    assert plain.history["train_loss"].iloc[0] != noisy.history["train_loss"].iloc[0]
    # evaluation sees clean inputs: the reported validation MAE is the trained weights' score on the clean windows
    from contextlib import nullcontext

    from stlib.train import evaluate

    clean = evaluate(noisy.model, make_batches(tiny, "val", 256), tiny, nullcontext())
    assert clean["mae"] == pytest.approx(noisy.metrics["val"]["mae"], rel=1e-6)


def test_early_stop(tiny, monkeypatch):
    from stlib.training import loop

    vals = iter([5.0, 4.0, 4.5, 3.9999, 4.2, 4.1, 4.0, 3.0, 3.0, 3.0])  # the validations of 10 epochs
    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda m, b, *a, **k: {**real(m, b, *a, **k), "mae": next(vals)})
    run = fit(tiny_config(train__epochs=10, train__early_stop_patience=3), dataset=tiny)
    # 3.9999 (epoch 4) is the best: epochs 5-7 do not beat it, so training ends at 7 and tests epoch 4's weights
    assert len(run.history) == 7 and run.metrics["best_epoch"] == 4 and run.metrics["stopped_by"] == "early stop"


def test_grad_clip_changes_training(tiny):
    ref = fit(tiny_config(train__epochs=1), dataset=tiny)
    clipped = fit(tiny_config(train__epochs=1, train__grad_clip=1e-4), dataset=tiny)
    assert not state_equal(ref.model.state_dict(), clipped.model.state_dict(), atol=1e-6)


def test_cli_runs_and_rejects_bad_values(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(
        "data: {name: synthetic, num_sensors: 6, num_days: 3}\n"
        "model: {name: stid, embed_dim: 8}\ntrain: {epochs: 1, quiet: true}\n"
    )
    assert main(["--params", str(params), "--set", "train.seed=1", "--stage", "cli"]) == 0
    out = capsys.readouterr().out
    assert "test MAE" in out and "runs/cli/" in out
    assert main(["--params", str(params), "--set", "train.batch_size=0"]) == 2
    assert "train.batch_size must be >= 1" in capsys.readouterr().err
    assert main(["--params", str(params), "--set", "train.lrr=0.1"]) == 2
    assert "did you mean 'train.lr'" in capsys.readouterr().err
    assert main(["--params", str(params), "--set", "model.name=transformer"]) == 2
    assert "model.name must be one of" in capsys.readouterr().err


def test_params_files_run_config():
    cfg = load("params/default.yaml", preset="stid", overrides=["train.epochs=3"])
    assert cfg.model.name == "stid" and cfg.train.epochs == 3 and cfg.train.scheduler == "multistep"
    with pytest.raises(ConfigError, match="unknown preset"):
        load("params/default.yaml", preset="stdi")


def test_ema_weights_are_the_ones_validated_and_tested(tiny):
    """train.ema: the best checkpoint holds the averaged weights, which differ from the last raw weights and
    from a run without the average; the average's warm-up forgets the initial weights."""
    plain = fit(tiny_config(train__epochs=2), dataset=tiny)
    avg = fit(tiny_config(train__epochs=2, train__ema=0.9), dataset=tiny)
    assert avg.metrics["test"]["mae"] != plain.metrics["test"]["mae"]
    assert avg.history["train_loss"].tolist() == pytest.approx(plain.history["train_loss"].tolist())  # same steps
    from stlib.train import ema_model

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    ema = ema_model(net, 0.999)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(60):
        ema.update_parameters(net)
    # a fixed 0.999 would keep ~94 % of the initial weights after 60 updates; the warmed-up decay keeps < 10 %
    assert (ema.module.weight - 1.0).abs().max() < 0.1 * (1.0 + net.weight.abs().max())


def test_ema_warns_when_its_decay_is_never_reached(tiny):
    """train.ema above what the warm-up reaches in the run's updates trains the same run as any other such value:
    the trainer says so, naming the knob; a decay the run reaches gives no warning."""
    from stlib.training.scoring import ema_model, ema_warmup_updates

    assert (ema_warmup_updates(0.999), ema_warmup_updates(0.9995), ema_warmup_updates(0.9)) == (8990, 17990, 80)
    net = torch.nn.Linear(1, 1, bias=False)
    ema = ema_model(net, 0.9)
    with torch.no_grad():
        for n in range(ema_warmup_updates(0.9) + 1):  # the first update copies; each next one moves by 1 - decay
            net.weight.fill_(float(n))
            before = ema.module.weight.item()
            ema.update_parameters(net)
    moved = (ema.module.weight.item() - before) / (n - before)
    assert moved == pytest.approx(1 - 0.9, rel=1e-3)  # warmed up: the decay in use is 0.9 by then
    with pytest.warns(UserWarning, match=r"train.ema=0.99 is reached only after 890 updates"):
        fit(tiny_config(train__epochs=1, train__ema=0.99), dataset=tiny)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tiny_config(train__epochs=1, train__ema=0.1), dataset=tiny)  # reached at once
    assert not [w for w in caught if "train.ema" in str(w.message)]


def test_ema_state_resumes_exactly(tiny, tmp_path):
    cfg = tiny_config(train__epochs=3, train__ema=0.9, train__save_checkpoint=True)
    ref = fit(cfg, dataset=tiny, out_root=tmp_path / "ref")
    ckpt = torch.load(ref.dir / "last.pt", weights_only=True)
    assert ckpt["ema"] is not None and "n_averaged" in ckpt["ema"]
    cut = tiny_config(train__epochs=3, train__ema=0.9, train__save_checkpoint=True, train__time_budget_s=1e-6)
    part = fit(cut, dataset=tiny, out_root=tmp_path / "cut")  # stops after epoch 1
    assert len(part.history) == 1
    cfg_file = part.dir / "config.yaml"  # continue it as the 3-epoch run it would have been
    cfg_file.write_text(cfg_file.read_text().replace("time_budget_s: 1.0e-06", "time_budget_s: 0.0"))
    (part.dir / "metrics.json").unlink()
    last = torch.load(part.dir / "last.pt", weights_only=True)
    last["progress"]["done"] = False
    last["config"]["train"]["time_budget_s"] = 0.0
    torch.save(last, part.dir / "last.pt")
    resumed = fit(dataset=tiny, resume=part.dir)
    assert resumed.metrics["test"]["mae"] == pytest.approx(ref.metrics["test"]["mae"], rel=1e-6)


def stid_head_config(**dotted):
    return tiny_config(
        model__name="alternating",
        model__embedding="stid",
        model__patch=3,
        model__head="linear",
        model__encoder_depth=2,
        model__stid_head=True,
        **dotted,
    )


def test_stem_epochs_train_stids_path_alone_then_the_blocks(tiny, monkeypatch):
    """model.stem_epochs: the blocks run in no training step of the first epochs, then in every one."""
    from stlib.models.encdec import EncoderDecoder

    calls = []  # (epoch-independent) one entry per training forward: did the blocks run?
    encode = EncoderDecoder.encode

    def spy(self, *args, **kw):
        calls.append(self.training)
        return encode(self, *args, **kw)

    monkeypatch.setattr(EncoderDecoder, "encode", spy)
    per_epoch = len(make_batches(tiny, "train", 64))
    run = fit(stid_head_config(train__epochs=3, model__stem_epochs=2), dataset=tiny)
    assert sum(calls) == per_epoch  # training forwards through the blocks: the third epoch's only
    assert run.model.head.weight.abs().max() > 0  # the blocks' head moved once they joined
    calls.clear()
    fit(stid_head_config(train__epochs=3), dataset=tiny)
    assert sum(calls) == 3 * per_epoch


def test_stem_patience_lets_the_blocks_join_once_validation_stalls(tiny, monkeypatch):
    """model.stem_patience: with a validation MAE that never improves, the blocks join after 1 stalled validation
    (epoch 3 of a 3-epoch stem); without it they wait for stem_epochs."""
    from stlib.models.encdec import EncoderDecoder
    from stlib.training import loop

    calls, encode, evaluate = [], EncoderDecoder.encode, loop.evaluate

    def spy(self, *args, **kw):
        calls.append(self.training)
        return encode(self, *args, **kw)

    monkeypatch.setattr(EncoderDecoder, "encode", spy)
    monkeypatch.setattr(loop, "evaluate", lambda *a, **kw: {**evaluate(*a, **kw), "mae": 5.0})  # a flat validation
    per_epoch = len(make_batches(tiny, "train", 64))
    fit(stid_head_config(train__epochs=4, model__stem_epochs=3, model__stem_patience=1), dataset=tiny)
    assert sum(calls) == 2 * per_epoch  # epochs 3 and 4
    calls.clear()
    fit(stid_head_config(train__epochs=4, model__stem_epochs=3), dataset=tiny)
    assert sum(calls) == per_epoch  # epoch 4 only


def test_stalled_counts_validations_without_a_gain():
    from stlib.models.alternating import stalled

    assert not stalled([5.0, 4.0, 3.0], 1)  # every validation a gain
    assert stalled([5.0, 4.0, 4.0], 1) and not stalled([5.0, 4.0, 4.0], 2)
    assert stalled([5.0, 5.1, 4.9999, 4.0], 2)  # 4.9999 is no gain of 0.01 % on 5.0: two stalled in a row
    assert not stalled([5.0, 5.1, 4.0, 4.1], 2)  # the count restarts at a gain
    assert not stalled([5.0] * 10, 0)  # 0 = off


def test_stem_epochs_with_ema_skip_the_blocks_in_the_average_too(tiny):
    run = fit(stid_head_config(train__epochs=2, model__stem_epochs=1, train__ema=0.9), dataset=tiny)
    assert math.isfinite(run.metrics["test"]["mae"])
    assert run.model.stem_only is False  # the last epoch trained the whole model


def test_stem_epochs_config_errors():
    with pytest.raises(ConfigError, match=r"model.stem_epochs \(1\) needs STID's head.*model.stid_head: true"):
        tiny_config(model__name="alternating", model__stem_epochs=1, train__epochs=3)
    for name in ("encdec", "stid"):  # the models without STID's head do not take the option
        with pytest.raises(ConfigError, match=f"model.stem_epochs does not apply to model {name}"):
            tiny_config(model__name=name, model__stem_epochs=1, train__epochs=3)
    with pytest.raises(ConfigError, match="must be below train.epochs"):
        stid_head_config(model__stem_epochs=2, train__epochs=2)
    with pytest.raises(ConfigError, match=r"model.stem_patience \(5\) ends the phase model.stem_epochs sets"):
        stid_head_config(model__stem_patience=5, train__epochs=2)


def test_ema_copies_integer_buffers_instead_of_averaging_them(tiny):
    """The weight average must not average an index table (a long buffer): it stays exact, so the averaged model
    validates as the same weights loaded into a fresh model score."""
    from stlib.training.scoring import ema_model

    class Indexed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)
            self.register_buffer("order", torch.arange(7))

    model = Indexed()
    ema = ema_model(model, 0.999)
    for _ in range(300):  # many updates: a float average of the table would have drifted below an integer
        with torch.no_grad():
            model.order.copy_(torch.arange(7).flip(0))
            model.lin.weight.add_(0.01)
        ema.update_parameters(model)
    assert torch.equal(ema.module.order, torch.arange(7).flip(0)) and ema.module.order.dtype == torch.int64
    assert not torch.equal(ema.module.lin.weight, model.lin.weight)  # the weights are averaged


def test_running_loss_sums_as_the_host_would_and_keeps_the_first_bad_step():
    from stlib.training.progress import RunningLoss

    acc, host = RunningLoss(torch.device("cpu")), 1.25
    acc.start(host)
    for i, v in enumerate([0.3, 0.7, 0.1]):
        loss = torch.tensor(v, dtype=torch.float32)
        acc.add(loss, i, 5)
        host += loss.item() * 5
    assert acc.read() == (host, None)
    acc.add(torch.tensor(float("inf")), 3, 5)
    acc.add(torch.tensor(float("nan")), 4, 5)
    total, bad = acc.read()
    assert math.isnan(total) and bad == (3, math.inf)  # the first non-finite step, not the last


def test_accumulation_groups_and_the_short_last_step():
    from stlib.training.schedule import accumulation

    assert [accumulation(i, 7, 3) for i in range(7)] == [(3, False), (3, False), (3, True)] * 2 + [(1, True)]
    assert all(accumulation(i, 4, 1) == (1, True) for i in range(4))


def test_nan_loss_fails_naming_its_epoch_and_step(tiny, monkeypatch):
    from stlib.training import loop

    calls, loss = [0], loop.compute_loss

    def nan_on_call_11(*a, **kw):  # 8 batches per epoch: epoch 2, step 2
        calls[0] += 1
        out = loss(*a, **kw)
        return out * float("nan") if calls[0] == 11 else out

    monkeypatch.setattr(loop, "compute_loss", nan_on_call_11)
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at epoch 2, step 2 \(batch 3 of 8"):
        fit(tiny_config(train__epochs=3), dataset=tiny)


def test_early_stop_counts_the_validations_after_the_best_checkpoint():
    """Any lower validation MAE resets the count, however small the gain (below the plateau rule's 1e-4): with a
    moving average of the weights validation creeps down for tens of epochs before a cut of the lr."""
    from stlib.training.checkpoint import Progress

    p = Progress()
    for epoch, v in enumerate([10.0, 9.9999, 9.9998, 10.5, float("nan"), 10.2], 1):
        if v < p.best:
            p.best, p.best_epoch = v, epoch
        p.end_epoch({"epoch": epoch, "val_mae": v}, "", 0.0)
    assert p.best_epoch == 3 and p.since_best() == 2  # epochs 4 and 6 (5 was not validated)
    assert p.since_best({"epoch": 7, "val_mae": 10.1}) == 3
