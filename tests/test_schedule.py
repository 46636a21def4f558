"""The learning rate: schedule.learning_rate step by step against torch's own schedulers, and the loop using it."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config
from torch.optim import lr_scheduler

from stlib.config import TrainConfig
from stlib.data import make_batches
from stlib.train import fit
from stlib.training.schedule import Plateau, learning_rate

SPE = 5  # optimizer steps per epoch in these tests


def torch_optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def torch_lr(opt: torch.optim.Optimizer) -> float:
    return opt.param_groups[0]["lr"]


def same(ours: float, theirs: float) -> bool:
    return ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("milestones", [[2, 5, 7], [1], [3, 3, 6], []])
def test_multistep_is_torch_multisteplr_stepped_at_epoch_ends(milestones):
    tc = TrainConfig(lr=0.01, scheduler="multistep", milestones=milestones, gamma=0.3, epochs=10)
    opt = torch_optimizer(tc.lr)
    ref = lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.3)
    for epoch in range(1, tc.epochs + 1):
        for step in range((epoch - 1) * SPE, epoch * SPE):  # constant within an epoch
            assert same(learning_rate(tc, step, epoch, SPE), torch_lr(opt)), (epoch, step)
        opt.step()
        ref.step()


@pytest.mark.parametrize("warmup", [1, 7, 12])
def test_warmup_is_a_torch_lambdalr_and_linearlr_stepped_per_optimizer_step(warmup):
    tc = TrainConfig(lr=0.02, scheduler="none", warmup_steps=warmup, epochs=8)
    opt_lambda, opt_linear = torch_optimizer(tc.lr), torch_optimizer(tc.lr)
    ref_lambda = lr_scheduler.LambdaLR(opt_lambda, lambda s: min(1.0, (s + 1) / warmup))
    # LinearLR from 1/W to 1 over W - 1 steps: step s (0-based) runs at (s + 1) / W of the lr, then the full lr
    ref_linear = (
        lr_scheduler.LinearLR(opt_linear, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1))
        if warmup > 1
        else None
    )
    for step in range(tc.epochs * SPE):  # counted over the run, across epoch boundaries
        ours = learning_rate(tc, step, step // SPE + 1, SPE)
        assert same(ours, torch_lr(opt_lambda)), step
        if ref_linear is not None:
            assert same(ours, torch_lr(opt_linear)), step
        for opt, ref in ((opt_lambda, ref_lambda), (opt_linear, ref_linear)):
            if ref is not None:
                opt.step()
                ref.step()
    assert learning_rate(tc, 0, 1, SPE) == pytest.approx(tc.lr / warmup)
    assert learning_rate(tc, warmup - 1, 1, SPE) == tc.lr


@pytest.mark.parametrize("min_lr", [0.0, 1e-4])
def test_cosine_is_torch_cosineannealinglr_over_every_step_of_the_run(min_lr):
    tc = TrainConfig(lr=0.003, scheduler="cosine", min_lr=min_lr, epochs=6)
    total = tc.epochs * SPE
    opt = torch_optimizer(tc.lr)
    ref = lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr)
    for step in range(total + 1):
        assert same(learning_rate(tc, step, min(step // SPE + 1, tc.epochs), SPE), torch_lr(opt)), step
        opt.step()
        ref.step()
    # past the end it stays at the floor (torch's would rise again: it is periodic)
    assert learning_rate(tc, total + 7, tc.epochs, SPE) == pytest.approx(min_lr, abs=1e-15)


def test_warmup_then_cosine_is_torch_linearlr_chained_with_cosineannealinglr():
    tc = TrainConfig(lr=0.004, scheduler="cosine", warmup_steps=6, epochs=5)
    total = tc.epochs * SPE
    opt = torch_optimizer(tc.lr)
    ref = lr_scheduler.ChainedScheduler(
        [
            lr_scheduler.LinearLR(opt, start_factor=1 / 6, end_factor=1.0, total_iters=5),
            lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0),
        ]
    )
    for step in range(total):
        assert same(learning_rate(tc, step, step // SPE + 1, SPE), torch_lr(opt)), step
        opt.step()
        ref.step()


def test_cosine_follows_the_time_budget_when_it_is_further_along():
    tc = TrainConfig(lr=0.01, scheduler="cosine", min_lr=0.001, epochs=100)
    assert learning_rate(tc, 0, 1, SPE, time_frac=0.5) == pytest.approx(0.001 + 0.009 * 0.5)
    assert learning_rate(tc, 0, 1, SPE, time_frac=2.0) == pytest.approx(0.001)  # budget spent: the floor
    late = 90 * SPE  # the steps are further along than the clock: they decide
    assert learning_rate(tc, late, 91, SPE, time_frac=0.1) == learning_rate(tc, late, 91, SPE)


@pytest.mark.parametrize("patience, min_lr", [(2, 0.0), (0, 0.02), (1, 0.0)])
def test_plateau_is_torch_reducelronplateau_stepped_after_each_validation(patience, min_lr):
    metrics = [5, 4, 4.5, 4.2, 4.1, 4.3, 3.0, 3.0002, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 2.0, 2.1, 2.2]
    tc = TrainConfig(
        lr=0.1, scheduler="plateau", patience=max(patience, 1), factor=0.5, min_lr=min_lr, epochs=len(metrics)
    )
    plateau, plateau_lr = Plateau(patience, tc.factor, min_lr), tc.lr  # patience 0: cut at every stall
    opt = torch_optimizer(tc.lr)
    ref = lr_scheduler.ReduceLROnPlateau(opt, patience=patience, factor=0.5, min_lr=min_lr)
    for epoch, metric in enumerate(metrics, start=1):
        for step in range((epoch - 1) * SPE, epoch * SPE):
            assert same(learning_rate(tc, step, epoch, SPE, plateau_lr), torch_lr(opt)), (epoch, step)
        plateau_lr = plateau.step(metric, plateau_lr)  # after the epoch's validation
        ref.step(metric)
    assert plateau_lr < tc.lr


def test_no_scheduler_is_the_constant_lr():
    tc = TrainConfig(lr=0.007, scheduler="none", epochs=3)
    assert {learning_rate(tc, s, s // SPE + 1, SPE, plateau_lr=1.0, time_frac=0.9) for s in range(15)} == {0.007}


@pytest.mark.parametrize(
    "scheduler, extra",
    [
        ("cosine", {"train__warmup_steps": 3, "train__min_lr": 1e-4}),
        ("multistep", {"train__milestones": [1, 2], "train__warmup_steps": 5, "train__accumulation_steps": 2}),
    ],
)
def test_the_loop_sets_the_scheduled_lr_at_every_step(tiny, scheduler, extra):
    cfg = tiny_config(train__scheduler=scheduler, train__epochs=3, **extra)
    tc = cfg.train
    run = fit(cfg, dataset=tiny)
    spe = math.ceil(len(make_batches(tiny, "train", tc.batch_size)) / tc.accumulation_steps)
    # the history's lr is the one of each epoch's last optimizer step
    assert run.history["lr"].tolist() == [learning_rate(tc, e * spe - 1, e, spe) for e in (1, 2, 3)]
