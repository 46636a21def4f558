"""What every figure says and where its legend goes: a footer naming dataset, device and unit; legends beside the axes.

    ax = ...draw...
    legend_outside(ax)                           # right of the axes, never over the data
    stamp(ax.figure, dataset=ds, device="cuda")  # "Data: pems08-tail, 5-minute steps | Device: ... | Unit: ..."

The footer sits under everything the axes draw (tick labels, x labels, legends) and is kept by
savefig(bbox_inches="tight"), which the notebooks use (stlib.nb.Context.save).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from .records import cpu_model, joined
from .records import run_device as record_device

FOOTER_GID = "stlib-footer"
NOT_RECORDED = "not recorded"
ARCHITECTURES = {"x86_64", "amd64", "aarch64", "arm64", "i386", "i686", "ppc64le", "s390x"}


def device_label(device=None) -> str:
    """A device in words: a GPU's name as is, 'cpu' (this machine) as 'CPU (its model)', an architecture
    ('x86_64', as run records of CPU runs hold it) as 'CPU (x86_64)'; None or empty: 'not recorded'."""
    if device is None or (isinstance(device, float) and np.isnan(device)) or not str(device).strip():
        return NOT_RECORDED
    kind = getattr(device, "type", None) or str(device).split(":")[0].strip().lower()
    if kind == "cpu":
        return f"CPU ({cpu_model()})"
    if kind == "cuda":
        try:
            import torch

            return torch.cuda.get_device_name(torch.device(str(device)))
        except (ImportError, RuntimeError, AssertionError):
            return "CUDA GPU"
    if kind == "mps":
        return "Apple GPU (mps)"
    text = str(device).strip()
    return f"CPU ({text})" if text.lower() in ARCHITECTURES else text


def run_device(run) -> str | None:
    """The device a run trained on, in words: its record's env.json (records.recorded_device), else the run's own
    device, else None."""
    folder = getattr(run, "dir", None)
    if folder is not None and (Path(folder) / "env.json").exists():
        return record_device(folder)
    dev = getattr(run, "device", None)
    return str(dev) if dev is not None else None


def export_context(path) -> dict:
    """{'dataset', 'device'} of a committed run export (python -m stlib.reporting.results), read from its runs file:
    a history file (F_history.csv) names the runs file F.csv beside it. Missing pieces are None."""
    path = Path(path)
    runs = path.with_name(path.stem.removesuffix("_history") + ".csv")
    if not runs.exists():
        return {"dataset": None, "device": None}
    table = pd.read_csv(runs)
    devices = [device_label(d) for d in dict.fromkeys(table["device"])] if "device" in table else []
    return {"dataset": joined(table["dataset"]) if "dataset" in table else None, "device": joined(devices)}


def unit_of(data, interval_minutes: int = 5) -> str | None:
    """The target's unit of a dataset known by name or by its DataConfig (without loading it): the config's
    `unit` when set, else the dataset's own (vehicles/5 min for PEMS flow, mph for METR-LA / PEMS-BAY); None
    when the name says nothing (your own file)."""
    from ..data.sources import DCRNN_NAMES, PEMS_NAMES, flow_unit

    if hasattr(data, "name"):
        if getattr(data, "unit", None):
            return data.unit
        data, interval_minutes = data.name, getattr(data, "interval_minutes", interval_minutes)
    if data in DCRNN_NAMES:
        return "mph"
    if data in PEMS_NAMES or data == "pems08-tail":
        return flow_unit(5)
    if data == "synthetic":
        return flow_unit(interval_minutes)
    return None


def footer(dataset=None, device=None, unit: str | None = None, computed: bool = True) -> str:
    """'Data: pems08-tail, 5-minute steps | Device: NVIDIA H100 | Unit: vehicles/5 min'.

    dataset: a Dataset (its name, interval and unit) or a name; unit overrides the dataset's; whatever is
    unknown is said to be (a reviewer should see the gap, not guess). computed=False: a figure of the data
    alone, which no device made (no device part).
    """
    if dataset is not None and hasattr(dataset, "interval_minutes"):
        data = f"{dataset.name}, {dataset.interval_minutes}-minute steps"
        unit = unit or dataset.unit or "original units (not named by the dataset)"
    else:
        data = str(dataset) if dataset else NOT_RECORDED
    parts = [f"Data: {data}", *([f"Device: {device_label(device)}"] if computed else []),
             f"Unit: {unit or NOT_RECORDED}"]
    return "  |  ".join(parts)


def _below_axes(fig):
    """xycoords for the footer: the union of the figure's axes as drawn (labels, legends, colour bars included)."""
    def bbox(renderer):
        boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
        boxes = [b for b in boxes if b is not None]
        return Bbox.union(boxes) if boxes else fig.bbox
    return bbox


def _footers(fig) -> list:
    return [a for a in fig.artists if a.get_gid() == FOOTER_GID]


def stamp(fig, dataset=None, device=None, unit: str | None = None, computed: bool = True) -> Annotation:
    """Write (or rewrite) the figure's footer naming dataset, device and unit, under all its axes; returns it."""
    for old in _footers(fig):
        old.remove()
    # anchored to the axes as drawn, so it clears tick labels, x labels and legends whatever the layout
    note = Annotation(footer(dataset, device, unit, computed), xy=(0, 0), xycoords=_below_axes(fig), xytext=(0, -6),
                      textcoords="offset points", ha="left", va="top", fontsize=7.5, color="0.3", gid=FOOTER_GID)
    fig.add_artist(note)
    return note


def footer_text(fig) -> str:
    """The footer stamp() wrote on a figure, '' when none."""
    return next((a.get_text() for a in _footers(fig)), "")


def legend_outside(ax, handles=None, labels=None, **kw):
    """The axes' legend to its right (upper left corner at the axes' upper right), so it never covers data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if not handles:
        return None
    kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 8, "frameon": False,
          **kw}
    return ax.legend(handles, labels, **kw)
