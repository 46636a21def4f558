"""What a run shows while it trains (a bar per epoch, epoch lines, or nothing) and its TensorBoard scalars."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
from conftest import tiny_config

from stlib.config import ConfigError, replace
from stlib.train import fit
from stlib.training import progress


def loud(**dotted):
    """tiny_config with progress on, named like an ablation's configuration."""
    return replace(tiny_config(train__quiet=False), name="+scheduler", **{"train.seed": 1, **dotted})


def test_duration_reads_like_a_person_says_it():
    assert [progress.duration(s) for s in (12.3, 185, 4000)] == ["12 s", "3 min 05 s", "1 h 06 min"]


def test_pick_mode():
    assert progress.pick_mode("auto", quiet=True) == "off"
    assert progress.pick_mode("bar", quiet=False, main=False) == "off"  # only rank 0 shows progress
    assert progress.pick_mode("auto", quiet=False) == "lines"  # pytest's stderr is no terminal
    with pytest.raises(ConfigError, match="progress must be one of auto, bar, lines, off, got 'loud'"):
        progress.pick_mode("loud", quiet=False)


def test_auto_is_a_bar_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.pick_mode("auto", quiet=False) == ("bar" if progress.HAVE_TQDM else "lines")


def test_without_tqdm_a_stand_in_shows_lines(monkeypatch, capsys):
    """A bare GPU machine has no tqdm: bars become epoch lines, and tqdm's uses elsewhere still work."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` fails
    spec = importlib.util.spec_from_file_location("stlib.training._progress_without_tqdm", progress.__file__)
    bare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bare)
    assert not bare.HAVE_TQDM and bare.pick_mode("bar", quiet=False) == "lines"
    bar = bare.tqdm(total=3, desc="speed ladder")  # as stlib.studies.bench uses it
    bar.update(1), bar.set_postfix_str("x"), bar.close()
    assert list(bare.tqdm([1, 2])) == [1, 2]
    bare.tqdm.write("one line")
    assert capsys.readouterr().out == "one line\n"


def test_lines_name_configuration_seed_and_epoch(tiny, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    fit(loud(**{"train.epochs": 3}), dataset=tiny, progress="lines")
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 3  # progress on stderr, one line per epoch, no bar
    assert lines[0].startswith("+scheduler s1 ep 1/3  loss ") and "val MAE" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("+scheduler s1 ep 3/3") and lines[-1].endswith("done")
    assert "\r" not in err and "%|" not in err


def test_lines_are_thinned_out_for_fast_epochs(tiny, capsys):
    fit(loud(**{"train.epochs": 4}), dataset=tiny, progress="lines")
    lines = capsys.readouterr().err.splitlines()  # the first and the last epoch; the others came too soon
    assert [ln.split()[3] for ln in lines] == ["1/4", "4/4"]


def test_quiet_is_silence(tiny, capsys):
    fit(loud(**{"train.quiet": True, "train.epochs": 2}), dataset=tiny, progress="bar")
    assert capsys.readouterr() == ("", "")


@pytest.mark.skipif(not progress.HAVE_TQDM, reason="tqdm is not installed")
def test_bar_moves_over_the_batches_of_each_epoch(tiny, capsys):
    fit(loud(**{"train.epochs": 2}), dataset=tiny, progress="bar")
    err = capsys.readouterr().err
    assert "+scheduler s1 ep 2/2:" in err and "batch/s" in err and "loss 0." in err  # desc, rate, running loss
    assert "/8 [" in err  # 8 batches of 64 of the tiny training split: counted per batch, not per epoch
    assert "+scheduler s1 ep 1/2  loss" in err  # each epoch leaves one line


def test_epoch_line_eta_follows_the_budget():
    show = progress.TrainProgress("lines", "encdec s0", epochs=10, batches=5)
    show.epoch_seconds = [60.0]
    row = {"epoch": 1, "train_loss": 0.5, "val_mae": math.nan, "seconds": 60.0}
    assert show.epoch_line(row, math.inf, 0, last=False, budget_left=None).endswith("val -  60.0 s  ETA 9 min 00 s")
    assert show.epoch_line(row, math.inf, 0, last=False, budget_left=90).endswith("ETA 1 min 30 s")


def test_bad_progress_value_fails_before_any_record(tiny, tmp_path):
    with pytest.raises(ConfigError, match="progress must be one of"):
        fit(loud(), dataset=tiny, out_root=tmp_path, progress="verbose")
    assert not (tmp_path / "runs").exists()


# ---- TensorBoard ------------------------------------------------------------------------------


def test_tensorboard_logs_losses_val_mae_lr_and_test_metrics(tiny):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = fit(loud(**{"train.epochs": 2, "train.tensorboard": True, "train.quiet": True}), dataset=tiny)
    logs = run.dir / "tensorboard"
    assert any(p.name.startswith("events.out.tfevents") for p in logs.iterdir())
    acc = EventAccumulator(str(logs))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "step/loss",
        "step/lr",
        "epoch/train_loss",
        "epoch/val_mae",
        "epoch/lr",
        "test/mae",
        "test/rmse",
        "test/mape",
        "test/mae_h12",
        "val/mae",
    } <= tags
    assert [e.step for e in acc.Scalars("epoch/train_loss")] == [1, 2]
    assert len(acc.Scalars("step/loss")) == 16  # 8 optimizer steps an epoch
    assert [e.value for e in acc.Scalars("epoch/val_mae")] == pytest.approx(run.history["val_mae"].tolist())
    assert acc.Scalars("test/mae")[0].value == pytest.approx(run.metrics["test"]["mae"])


def test_no_tensorboard_folder_when_off(tiny):
    run = fit(loud(**{"train.epochs": 1, "train.quiet": True}), dataset=tiny)
    assert not (run.dir / "tensorboard").exists()


def test_tensorboard_missing_is_a_config_error(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        fit(loud(**{"train.tensorboard": True}), dataset=tiny, out_root=tmp_path)
    assert not (tmp_path / "runs").exists()  # refused before the run had a record
