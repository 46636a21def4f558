"""Exact resume: a run stopped at any moment continues to the same numbers; atomic, idempotent records."""

from __future__ import annotations

import errno
import json
import os
import signal

import faults
import pandas as pd
import pytest
import torch

from stlib.config import ConfigError, load_profile
from stlib.data import from_config
from stlib.reporting import records, results
from stlib.train import fit, main
from stlib.training import loop


class Killed(BaseException):
    """Stands in for a kill inside this process: nothing in fit() catches it."""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(params file, dataset, uninterrupted run directory) of faults.TINY: dropout, denoising, noise,
    accumulation and the plateau schedule, so every piece of saved state matters."""
    tmp = tmp_path_factory.mktemp("resume")
    params = faults.tiny_params(tmp)
    cfg = load_profile(params).run_config()
    ds = from_config(cfg.data)
    return params, ds, fit(cfg, dataset=ds, out_root=tmp / "reference").dir


def stop_at(monkeypatch, target: str, call: int):
    """Make the call-th call of <target> in the training loop raise Killed."""
    real, calls = getattr(loop, target), [0]

    def stopping(*a, **kw):
        calls[0] += 1
        if calls[0] == call:
            raise Killed
        return real(*a, **kw)

    monkeypatch.setattr(loop, target, stopping)


@pytest.mark.parametrize(
    "target, call, where",
    [
        ("compute_loss", 3, None),  # before the first checkpoint: starts over in the same directory
        ("compute_loss", 22, (1, 18)),  # mid-epoch 1, 3 batches after the checkpoint at batch 18
        ("compute_loss", 33, (2, 0)),  # first batch of epoch 2, just after the epoch-end checkpoint
        ("evaluate", 2, (2, 28)),  # during the validation of epoch 2 (last mid-epoch checkpoint: batch 28)
        ("write_results", 1, (4, 0)),  # training done, metrics.json and ledger not yet written
    ],
)
def test_stopped_run_resumes_to_identical_metrics(tiny_run, tmp_path, monkeypatch, target, call, where):
    params, ds, ref = tiny_run
    cfg = load_profile(params).run_config()
    with monkeypatch.context() as m:
        stop_at(m, target, call)
        with pytest.raises(Killed):
            fit(cfg, dataset=ds, out_root=tmp_path, checkpoint_every=3)
    (run_dir,) = faults.run_dirs(tmp_path)
    assert not (run_dir / "metrics.json").exists()
    if where is None:
        assert not (run_dir / "last.pt").exists()
    else:
        progress = records.load_torch(run_dir / "last.pt")["progress"]
        assert (progress["epoch"], progress["batch"]) == where
    half = run_dir / ".last.pt.abcd1234.tmp"  # what a kill in the middle of a write leaves
    half.write_bytes(b"PK\x03\x04 half a checkpoint")

    run = fit(dataset=ds, out_root=tmp_path, resume=run_dir)
    assert run.dir == run_dir and not half.exists()
    faults.same_results(run_dir, ref)
    assert results.ledger(tmp_path)["run_id"].tolist() == [run_dir.name]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_cli_resume_is_exact(tmp_path):
    """A real `kill -9` of `python -m stlib.train` mid-epoch, then `python -m stlib.train --resume RUN_DIR`."""
    detail = faults.kill_and_resume(tmp_path)  # asserts: killed mid-epoch, resumed, metrics.json identical
    assert "identical" in detail


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_or_sigterm_stops_with_one_line_and_resumes_exactly(tmp_path, sig):
    """Ctrl-C / SIGTERM mid-epoch: last.pt written after the step in progress, exit 130 / 143, the resume command
    in one line; `--resume` then ends with the numbers of an uninterrupted run."""
    assert "identical" in faults.kill_and_resume(tmp_path, sig=sig)


def test_resuming_a_finished_run_changes_nothing(tiny_run, tmp_path):
    params, ds, _ = tiny_run
    cfg = load_profile(params).run_config()
    cfg.train.epochs = 1
    first = fit(cfg, dataset=ds, out_root=tmp_path)
    again = fit(cfg, dataset=ds, resume=first.dir)
    assert again.metrics["test"] == first.metrics["test"] and len(again.history) == 1
    assert results.ledger(tmp_path)["run_id"].tolist() == [first.run_id]


def test_last_checkpoint_holds_the_whole_state(tiny_run, tmp_path):
    params, ds, ref = tiny_run
    ckpt = torch.load(ref / "last.pt", weights_only=True)  # plain tensors and values only
    assert {"model", "optimizer", "scaler", "plateau", "progress", "best_state", "rng", "config"} <= set(ckpt)
    assert {"torch", "cuda", "numpy", "python"} <= set(ckpt["rng"][0])
    p = ckpt["progress"]
    assert p["done"] and p["opt_step"] == 3 * 16 and len(p["history"]) == 3
    assert {"best", "best_epoch", "base_lr"} <= set(p) and "bad" in ckpt["plateau"]


def test_resume_refuses_another_config(tiny_run, tmp_path):
    params, ds, ref = tiny_run
    cfg = load_profile(params).run_config()
    cfg.train.lr = 0.1
    with pytest.raises(ConfigError, match=r"train.lr: 0.003 -> 0.1"):
        fit(cfg, dataset=ds, resume=ref)
    assert main(["--resume", str(ref), "--set", "train.lr=0.1"]) == 2
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        fit(resume=tmp_path)


def test_checkpoint_every_must_not_be_negative(tiny_run):
    params, ds, _ = tiny_run
    with pytest.raises(ConfigError, match="checkpoint_every"):
        fit(load_profile(params).run_config(), dataset=ds, checkpoint_every=-1)


# ---- records: atomic writes and the ledger -----------------------------------------------------


def test_full_disk_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    records.write_json(target, {"v": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="disk is full") as e:
        records.write_json(target, {"v": 2})
    assert e.value.errno == errno.ENOSPC and str(target) in str(e.value)
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp file


def test_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(PermissionError, match="cannot write .*new.txt: Permission denied"):
        records.atomic_write_text(tmp_path / "new.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_written_files_follow_the_umask(tmp_path):
    records.atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~records.UMASK


def test_ledger_keeps_one_row_per_run(tmp_path):
    records.append_ledger({"run_id": "a", "test_mae": 1.0}, tmp_path)
    records.append_ledger({"run_id": "b", "test_mae": 2.0}, tmp_path)
    records.append_ledger({"run_id": "a", "test_mae": 1.0}, tmp_path)  # a resumed run finishing again
    ledger = pd.read_csv(tmp_path / "ledger.csv")
    assert sorted(ledger["run_id"]) == ["a", "b"]


def test_remove_temp_files(tmp_path):
    (tmp_path / ".last.pt.x1.tmp").write_text("half")
    (tmp_path / "history.csv").write_text("epoch\n")
    assert [p.name for p in records.remove_temp_files(tmp_path)] == [".last.pt.x1.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_dataloader_path_resumes_exactly(tmp_path, monkeypatch):
    """A DataLoader draws its base seed from torch's generator when an epoch starts: a resumed epoch must not."""
    cfg = load_profile(faults.tiny_params(tmp_path, train={"loader": "dataloader", "epochs": 2})).run_config()
    ds = from_config(cfg.data)
    ref = fit(cfg, dataset=ds, out_root=tmp_path / "reference")
    with monkeypatch.context() as m:
        stop_at(m, "compute_loss", 45)  # epoch 2, batch 12: 4 batches past its checkpoint at batch 8
        with pytest.raises(Killed):
            fit(cfg, dataset=ds, out_root=tmp_path / "run", checkpoint_every=5)
    (run_dir,) = faults.run_dirs(tmp_path / "run")
    fit(dataset=ds, resume=run_dir)
    faults.same_results(run_dir, ref.dir)


def test_a_checkpoint_with_the_old_early_stop_count_resumes(tiny_run, tmp_path, monkeypatch):
    """last.pt files written before early stopping read its count from the history carry a `stale` entry: they
    resume as before, to the uninterrupted run's numbers."""
    params, ds, ref = tiny_run
    cfg = load_profile(params).run_config()
    with monkeypatch.context() as m:
        stop_at(m, "compute_loss", 33)  # the first batch of epoch 2
        with pytest.raises(Killed):
            fit(cfg, dataset=ds, out_root=tmp_path, checkpoint_every=3)
    (run_dir,) = faults.run_dirs(tmp_path)
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    ckpt["progress"]["stale"] = 7
    torch.save(ckpt, run_dir / "last.pt")
    fit(dataset=ds, out_root=tmp_path, resume=run_dir)
    faults.same_results(run_dir, ref)
