"""Several processes: `torchrun --nproc_per_node=2 -m stlib.train` (gloo on CPU) = one process, same batches."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.distributed as td
import yaml

from stlib.config import load_profile
from stlib.data.synthetic import generate
from stlib.paths import REPO_ROOT
from stlib.reporting import results
from stlib.train import fit

TORCHRUN = Path(sys.executable).with_name("torchrun")


needs_torchrun = pytest.mark.skipif(
    not (TORCHRUN.exists() and td.is_available() and td.is_gloo_available()),
    reason="needs torchrun and the gloo backend",
)


def _torchrun(params: Path, outputs: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """torchrun --standalone --nproc_per_node=2 -m stlib.train --params params, in a session of its own."""
    env = {**os.environ, "STLIB_OUTPUT_DIR": str(outputs), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "stlib.train", "--params", str(params)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@needs_torchrun
@pytest.mark.slow
def test_time_budget_stops_every_rank_at_the_same_epoch(tmp_path):
    series, _, _ = generate(num_sensors=6, num_days=3, seed=0, missing_share=0.0)
    np.savez(tmp_path / "flow.npz", data=series)
    tree = {
        "stage": "ddp",
        "data": {"name": "file", "path": str(tmp_path / "flow.npz")},
        "model": {"name": "encdec", "d_model": 8, "n_heads": 2, "encoder_depth": 1, "decoder_depth": 1},
        "train": {"epochs": 50, "batch_size": 32, "threads": 1, "quiet": True, "time_budget_s": 1e-6},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    done = _torchrun(tmp_path / "p.yaml", tmp_path / "out")  # a rank that went on alone would hang
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "out" / "runs" / "ddp").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["stopped_by"] == "time budget"
    assert len(pd.read_csv(run_dir / "history.csv")) == 1
    tree["train"]["scheduler"] = "cosine"  # a schedule on each rank's own clock: refused, clearly
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    refused = _torchrun(tmp_path / "p.yaml", tmp_path / "out2")
    assert refused.returncode != 0 and "own clock" in refused.stderr


@needs_torchrun
@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    # no missing values: each rank's masked mean then weighs like the full batch, so the DDP gradient
    # (the mean over ranks) is the one-process gradient; batch 23 gives uneven 12 / 11 slices on purpose
    series, _, _ = generate(num_sensors=6, num_days=3, seed=0, missing_share=0.0)
    assert (series != 0).all()
    np.savez(tmp_path / "flow.npz", data=series)
    params = tmp_path / "p.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "stage": "ddp",
                "data": {"name": "file", "path": str(tmp_path / "flow.npz")},
                "model": {
                    "name": "encdec",
                    "d_model": 16,
                    "n_heads": 2,
                    "encoder_depth": 1,
                    "decoder_depth": 1,
                    "dropout": 0.0,
                    "use_denoising": False,
                },
                "train": {"epochs": 2, "batch_size": 23, "lr": 0.003, "threads": 1, "quiet": True},
            }
        )
    )
    outputs = tmp_path / "ddp"
    # --standalone: a free local port; a session of its own so that a hang is cleaned up, workers included
    done = _torchrun(params, outputs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test MAE") == 1  # rank 0 prints, the other rank is silent

    single = fit(load_profile(params).run_config(), out_root=tmp_path / "single")
    (run_dir,) = [p for p in (outputs / "runs" / "ddp").iterdir()]  # one record, written by rank 0
    hist = pd.read_csv(run_dir / "history.csv")
    for col in ("train_loss", "val_mae", "lr"):
        np.testing.assert_allclose(hist[col], single.history[col], rtol=1e-5, err_msg=col)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["best_epoch"] == single.metrics["best_epoch"]
    for split in ("val", "test"):
        for k in ("mae", "rmse", "mape"):
            assert metrics[split][k] == pytest.approx(single.metrics[split][k], rel=1e-5), (split, k)
    assert results.ledger(outputs)["run_id"].tolist() == [run_dir.name]
    shutil.rmtree(outputs)
