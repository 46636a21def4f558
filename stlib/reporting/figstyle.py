"""What every figure says and where its legend goes: a footer naming dataset, device and unit (under everything the
axes draw, kept by savefig(bbox_inches="tight")); legends beside the axes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from .records import NOT_RECORDED, device_label, joined, run_device  # noqa: F401  (device_label, run_device: here too)

FOOTER_GID = "stlib-footer"


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
    """The unit of a dataset known by name or DataConfig (its `unit`, else PEMS flow or mph); None if unknown."""
    from ..config import DCRNN_NAMES, PEMS_NAMES
    from ..data.sources import flow_unit

    if hasattr(data, "name"):
        if getattr(data, "unit", None):
            return data.unit
        data, interval_minutes = data.name, getattr(data, "interval_minutes", interval_minutes)
    if data in DCRNN_NAMES:
        return "mph"
    if data in PEMS_NAMES or data == "pems08-tail":
        return flow_unit(5)
    return flow_unit(interval_minutes) if data == "synthetic" else None


def footer(dataset=None, device=None, unit: str | None = None, computed: bool = True) -> str:
    """'Data: pems08-tail, 5-minute steps | Device: NVIDIA H100 | Unit: vehicles/5 min'; what is unknown is said to be;
    computed=False: a figure of the data alone (no device)."""
    if dataset is not None and hasattr(dataset, "interval_minutes"):
        data = f"{dataset.name}, {dataset.interval_minutes}-minute steps"
        unit = unit or dataset.unit or "original units (not named by the dataset)"
    else:
        data = str(dataset) if dataset else NOT_RECORDED
    device = [f"Device: {device_label(device)}"] if computed else []
    return "  |  ".join([f"Data: {data}", *device, f"Unit: {unit or NOT_RECORDED}"])


def _footers(fig) -> list:
    return [a for a in fig.artists if a.get_gid() == FOOTER_GID]


def stamp(fig, dataset=None, device=None, unit: str | None = None, computed: bool = True) -> Annotation:
    """Write (or rewrite) the figure's footer naming dataset, device and unit, under all its axes; returns it."""
    for old in _footers(fig):
        old.remove()

    def below_axes(renderer):  # the union of the axes as drawn: clears tick labels, x labels, legends, colour bars
        boxes = [b for ax in fig.axes if ax.get_visible() and (b := ax.get_tightbbox(renderer)) is not None]
        return Bbox.union(boxes) if boxes else fig.bbox

    text, style = footer(dataset, device, unit, computed), {"fontsize": 7.5, "color": "0.3", "gid": FOOTER_GID}
    note = Annotation(text, (0, 0), (0, -6), below_axes, "offset points", ha="left", va="top", **style)
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
    kw = {
        "loc": "upper left",
        "bbox_to_anchor": (1.02, 1.0),
        "borderaxespad": 0.0,
        "fontsize": 8,
        "frameon": False,
    } | kw
    return ax.legend(handles, labels, **kw)
