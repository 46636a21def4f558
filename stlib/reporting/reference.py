"""Reference figures measured by the project's peer on exactly the pems08-tail protocol (docs/results.md, "The
peer"), as data: ours must beat them under the same one."""

from __future__ import annotations

import pandas as pd

PROTOCOL = "pems08-tail"

# test metrics, masked, original units; MAPE in percent
PEER = {
    "BasicTS STID (100 epochs, 3 seeds)": dict(mae=14.645, mae_sd=0.026, rmse=24.16, mape=11.55, mae_h3=13.80)
    | dict(mae_h6=14.63, mae_h12=16.14, seconds_per_epoch=3.70),
    "last value": dict(mae=25.28, rmse=38.63, mape=15.62, mae_h3=19.57, mae_h6=24.25, mae_h12=34.68),
    "time-of-day average": dict(mae=33.13, rmse=50.49, mape=23.76, mae_h3=33.15, mae_h6=33.13, mae_h12=33.11),
    "STAEformer own code (5 epochs in 55 min, CPU)": dict(mae=18.80, rmse=28.47, mape=15.86, seconds_per_epoch=567.0),
}
STID_PEER_MAE = PEER["BasicTS STID (100 epochs, 3 seeds)"]["mae"]
STID_PEER_MINUTES = 7.0  # its 100 epochs on this 2-core CPU (3.70 s an epoch + validation), docs/results.md
# time-to-accuracy on the 2-core CPU: STAEformer's own code, its best checkpoint within 55 minutes
STAEFORMER_CPU = {"mae": PEER["STAEformer own code (5 epochs in 55 min, CPU)"]["mae"], "minutes": 55}

# the roadmap's own numbers (its author's dataset, not this protocol): current model, baseline, gate
ROADMAP = {"current_mae": 19.07, "baseline_mae": 14.57, "stage1_gate_mae": 16.0, "stage2_target": (13.0, 14.0)}


def peer_table() -> pd.DataFrame:
    """The peer figures as a table (one row per reference run)."""
    return pd.DataFrame.from_dict(PEER, orient="index").rename_axis("reference").reset_index()
