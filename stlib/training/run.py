"""A finished run: the Run a fit returns (or one read back from its record), and the files that close it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import RunConfig, build_run_config
from ..data import Dataset, from_config, make_batches
from ..models import build_model
from ..reporting import records


@dataclass
class Run:
    """A finished run: its config, record directory, history, metrics and best model."""

    config: RunConfig
    run_id: str
    dir: Path
    history: pd.DataFrame
    metrics: dict
    model: torch.nn.Module
    dataset: Dataset
    device: torch.device

    @classmethod
    def from_dir(cls, run_dir: Path, dataset: Dataset | None = None, device: str = "cpu") -> Run:
        """A finished run read back from its record, with its best weights loaded."""
        rec = records.read_run(run_dir)
        cfg = build_run_config(rec["config"], str(run_dir / "config.yaml"))
        ds = dataset if dataset is not None else from_config(cfg.data)
        dev = torch.device(device)
        model = build_model(cfg.model, ds).to(dev)
        if (run_dir / "best.pt").exists():
            model.load_state_dict(torch.load(run_dir / "best.pt", map_location=dev)["model"])
        return cls(cfg, run_dir.name, run_dir, rec["history"], rec["metrics"], model, ds, dev)

    @torch.no_grad()
    def predict(self, split: str = "test", batch_size: int = 256):
        """(pred, true) numpy arrays (S, out, N) in original units for a split, best weights."""
        self.model.eval()
        preds, trues = [], []
        for x, y in make_batches(self.dataset, split, batch_size, self.device):
            preds.append(self.dataset.denormalize(self.model(x).float())[..., 0].cpu())
            trues.append(y[..., 0].cpu())
        return torch.cat(preds).numpy(), torch.cat(trues).numpy()


def write_results(cfg: RunConfig, run_dir: Path, out_root: Path, hist: pd.DataFrame, metrics: dict, device) -> None:
    """metrics.json and the run's ledger row (one row, also when the run was resumed)."""
    if hist.empty:
        records.write_csv(run_dir / "history.csv", pd.DataFrame(columns=["epoch", "train_loss", "val_mae"]))
    records.write_json(run_dir / "metrics.json", metrics)
    test, val, h = metrics["test"], metrics["val"], metrics["test"]["by_horizon"]
    records.append_ledger(
        {
            "run_id": run_dir.name,
            **{k: getattr(cfg, k) for k in ("stage", "name", "profile")},
            "model": cfg.model.name,
            "dataset": metrics["dataset"],
            "seed": cfg.train.seed,
            "params": metrics["params"],
            "best_epoch": metrics["best_epoch"],
            "epochs_run": metrics["epochs_run"],
            "train_seconds": round(metrics["train_seconds"], 2),
            "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
            "val_mae": round(val["mae"], 4),
            **{f"test_{k}": round(test[k], 4) for k in ("mae", "rmse", "mape")},
            **{f"mae_h{k}": round(h[k]["mae"], 4) for k in ("3", "6", "12")},
            "device": str(device),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "run_dir": str(run_dir),
        },
        out_root,
    )
