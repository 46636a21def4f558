"""Data-overview figures for a Dataset and the pure computations behind them (graph algorithms from networkx).
Plot functions take the Dataset and an optional `ax` and return the Axes; missing values (stored as 0) are left out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from ..data.core import Dataset
from .figstyle import legend_outside, stamp

UNCONNECTED = "unconnected"


def sensor_graph_nx(edges: pd.DataFrame, n: int) -> nx.Graph:
    """The undirected graph of nodes 0..n-1 and the edges' from/to pairs (costs ignored), self-loops dropped."""
    g = nx.empty_graph(n)
    g.add_edges_from((a, b) for a, b in zip(edges["from"].tolist(), edges["to"].tolist()) if a != b)
    return g


def connected_components(edges: pd.DataFrame, n: int) -> np.ndarray:
    """(n,) component label per node of the undirected graph, labelled 0.. in order of first node."""
    labels = np.empty(n, dtype=np.int64)
    for i, nodes in enumerate(sorted(nx.connected_components(sensor_graph_nx(edges, n)), key=min)):
        labels[list(nodes)] = i
    return labels


def hop_distances(edges: pd.DataFrame, n: int) -> np.ndarray:
    """(n, n) int hop counts on the undirected graph; -1 where no path exists, 0 on the diagonal."""
    hops = np.full((n, n), -1, dtype=np.int64)
    for src, lengths in nx.all_pairs_shortest_path_length(sensor_graph_nx(edges, n)):
        hops[src, list(lengths)] = list(lengths.values())
    return hops


def _component_layout(g: nx.Graph, refine: bool) -> np.ndarray:
    """(k, 2) layout of one connected component: networkx's spectral layout (numpy's dense solver without scipy),
    spread by a seeded spring layout where networkx does that without scipy (under 500 nodes); centred, radius 1,
    the sign of each axis fixed (the largest entry positive)."""
    nodes = sorted(g)
    if len(nodes) <= 2:  # networkx puts both nodes of a pair at the centre
        return np.zeros((1, 2)) if len(nodes) == 1 else np.array([[-1.0, 0.0], [1.0, 0.0]])
    pos = nx.spectral_layout(g)
    if refine and len(nodes) < 500:  # the spectral layout alone crowds a road network's dense core
        pos = nx.spring_layout(g, pos=pos, seed=0, method="force")
    xy = np.array([pos[v] for v in nodes], dtype=np.float64)
    xy -= xy.mean(0)
    xy *= np.where(xy[np.abs(xy).argmax(0), [0, 1]] < 0, -1.0, 1.0)
    radius = np.linalg.norm(xy, axis=1).max()
    return xy / radius if radius > 0 else xy


def spectral_layout(edges: pd.DataFrame, n: int, refine: bool = True) -> np.ndarray:
    """(n, 2) node positions: a layout per component (_component_layout), components tiled largest first with area
    roughly proportional to their size, isolated nodes in a grid below."""
    g = sensor_graph_nx(edges, n)
    groups = sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: (-len(c), c[0]))
    multi = [c for c in groups if len(c) > 1]
    singles = sorted(c[0] for c in groups if len(c) == 1)
    pos = np.zeros((n, 2))
    ncols = int(np.ceil(np.sqrt(len(multi)))) if multi else 1
    for i, nodes in enumerate(multi):
        row, col = divmod(i, ncols)
        scale = np.sqrt(len(nodes) / len(multi[0]))
        pos[nodes] = _component_layout(g.subgraph(nodes), refine) * scale + [2.5 * col, -2.5 * row]
    if singles:
        if multi:  # a compact grid under the components, as wide as they are
            step, top = 0.25, -2.5 * ((len(multi) - 1) // ncols) - 1.4
            per_row = int((2.5 * (ncols - 1) + 2.0) / step) + 1
        else:  # no edges at all: a square grid
            step, top, per_row = 1.0, 0.0, int(np.ceil(np.sqrt(len(singles))))
        rows, cols = np.divmod(np.arange(len(singles)), per_row)
        pos[singles, 0] = -1.0 + cols * step
        pos[singles, 1] = top - rows * step
    return pos


def _missing_as_nan(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return np.where(x == 0, np.nan, x)


def deviation_series(values, time_of_day, steps_per_day: int, weekend=None) -> np.ndarray:
    """(T, N) values minus each sensor's mean at that time of day (per weekday/weekend if given) over the rows
    given (pass training rows only); 0 -> NaN."""
    x = _missing_as_nan(values)
    slot = np.asarray(time_of_day, dtype=np.int64)
    if weekend is not None:  # separate profiles: otherwise the weekend shift is shared by all sensors
        slot = slot + steps_per_day * np.asarray(weekend, dtype=np.int64)
    valid = np.isfinite(x)
    sums = np.zeros((2 * steps_per_day if weekend is not None else steps_per_day, x.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, slot, np.where(valid, x, 0.0))
    np.add.at(counts, slot, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = sums / counts  # NaN for slots a sensor never reports
    return x - profile[slot]


def series_correlation(x: np.ndarray) -> np.ndarray:
    """(N, N) Pearson correlation of the columns of a (T, N) array; NaNs count as the column mean."""
    x = np.asarray(x, dtype=np.float64)
    valid = np.isfinite(x)
    count = valid.sum(0)
    mean = np.where(count > 0, np.where(valid, x, 0.0).sum(0) / np.maximum(count, 1), 0.0)
    centred = np.where(valid, x - mean, 0.0)
    ss = (centred**2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = centred.T @ centred / np.sqrt(np.outer(ss, ss))
    return np.clip(corr, -1.0, 1.0)


def hop_correlation_table(corr, hops, max_hops: int = 10, max_far_pairs: int = 20000, seed: int = 0) -> pd.DataFrame:
    """One row per sensor pair i < j (i, j, hops, group, corr): all pairs within max_hops, farther and
    unconnected ones subsampled (seeded) to at most max_far_pairs."""
    i, j = np.triu_indices(corr.shape[0], k=1)
    h = hops[i, j]
    far = (h > max_hops) | (h < 0)
    if far.sum() > max_far_pairs:
        far_idx = np.flatnonzero(far)
        keep = np.ones(len(i), dtype=bool)
        keep[np.setdiff1d(far_idx, np.random.default_rng(seed).choice(far_idx, size=max_far_pairs, replace=False))] = 0
        i, j, h = i[keep], j[keep], h[keep]
    group = np.where(h < 0, UNCONNECTED, np.where(h > max_hops, f">{max_hops}", h.astype(str)))
    table = pd.DataFrame({"i": i, "j": j, "hops": h, "group": group, "corr": corr[i, j]})
    return table[np.isfinite(table["corr"])].reset_index(drop=True)


def correlation_by_hops(ds: Dataset, max_hops: int = 10, max_far_pairs: int = 20000) -> pd.DataFrame:
    """`hop_correlation_table` of the training-row deviations from each sensor's weekday/weekend daily profile."""
    rows = ds.train_rows
    dev = deviation_series(ds.target[rows], ds.time_of_day[rows], ds.steps_per_day, weekend=ds.day_of_week[rows] >= 5)
    hops = hop_distances(ds.edges, ds.num_sensors)
    return hop_correlation_table(series_correlation(dev), hops, max_hops=max_hops, max_far_pairs=max_far_pairs)


def daily_profile_table(ds: Dataset) -> pd.DataFrame:
    """The target by time of day and day type (weekday/weekend) over all sensors and days: mean, q25, q75."""
    x = _missing_as_nan(ds.target)
    weekend = ds.day_of_week >= 5
    rows = []
    for day_type, mask in (("weekday", ~weekend), ("weekend", weekend)):
        for slot in np.unique(ds.time_of_day[mask]):
            vals = x[mask & (ds.time_of_day == slot)].ravel()
            vals = vals[np.isfinite(vals)]
            if len(vals) == 0:
                continue
            q25, q75 = np.percentile(vals, [25, 75])
            rows.append((day_type, slot * ds.interval_minutes / 60.0, vals.mean(), q25, q75, len(vals)))
    return pd.DataFrame(rows, columns=["day_type", "hour", "mean", "q25", "q75", "count"])


def data_overview(ds: Dataset) -> pd.DataFrame:
    """A one-column table of `ds.summary()` for display: shape, span, split sizes, missing share, statistics."""
    s = ds.summary()
    rows = {
        "dataset": s["name"],
        "shape (steps × sensors × channels)": " × ".join(str(v) for v in s["shape"]),
        "edges": s["edges"],
        "interval": f"{s['interval_minutes']} min",
        "value": ds.value_label,
        "span": f"{s['start']} to {s['end']} ({s['days']} days)",
        "window (in → out steps)": f"{s['in_steps']} → {s['out_steps']}",
        **{f"{k} windows": f"{v} (first start row {s['first_window'].get(k, '-')})" for k, v in s["windows"].items()},
        "missing share (value 0)": f"{100 * s['missing_share']:.3f} %",
        "train rows": f"{s['train_rows'][0]} to {s['train_rows'][1]}",
        "train mean / std": f"{s['train_mean']:.2f} / {s['train_std']:.2f}",
        "min / max": f"{s['min']:g} / {s['max']:g}",
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=pd.Index(list(rows), name="field"))


def _axes(ax, figsize):
    return plt.subplots(figsize=figsize, layout="constrained")[1] if ax is None else ax


def _stamp(ax, ds: Dataset, unit: str | None = None):
    """The data figures' footer: dataset, interval and unit (no device: nothing was trained)."""
    stamp(ax.figure, ds, unit=unit or ds.unit or "original units (not named by the dataset)", computed=False)
    return ax


def daily_profile(ds: Dataset, ax=None):
    """Mean value by time of day, weekday vs weekend, with the interquartile band over sensors and days."""
    ax = _axes(ax, (8, 4))
    table = daily_profile_table(ds)
    for (day_type, part), color in zip(table.groupby("day_type", sort=True), ("tab:blue", "tab:orange")):
        days = len(np.unique(ds.timestamps.normalize()[(ds.day_of_week >= 5) == (day_type == "weekend")]))
        ax.plot(part["hour"], part["mean"], color=color, label=f"{day_type} mean ({days} days)")
        band = {"color": color, "alpha": 0.2, "linewidth": 0, "label": f"{day_type} 25-75 %"}
        ax.fill_between(part["hour"], part["q25"], part["q75"], **band)
    ax.set(xlim=(0, 24), xticks=range(0, 25, 3), xlabel="hour of day", ylabel=f"{ds.value_label}, missing excluded")
    ax.set_title(f"{ds.name}: daily profile over all sensors")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return _stamp(ax, ds)


def sensor_heatmap(ds: Dataset, days: float = 7, max_sensors: int = 60, ax=None):
    """Sensors × time heatmap of the first `days` days; missing values (0) in red, dates on the time axis."""
    ax = _axes(ax, (11, 5))
    steps = min(ds.num_steps, int(round(days * ds.steps_per_day)))
    sensors = np.unique(np.linspace(0, ds.num_sensors - 1, min(max_sensors, ds.num_sensors)).round().astype(int))
    block = ds.target[:steps, sensors].T
    cmap = plt.get_cmap("viridis").with_extremes(bad="red")
    extent = (-0.5, steps - 0.5, len(sensors) - 0.5, -0.5)
    image = ax.imshow(np.ma.masked_equal(block, 0), cmap, aspect="auto", interpolation="nearest", extent=extent)
    ts = ds.timestamps[:steps]
    midnights = np.flatnonzero((ts.hour == 0) & (ts.minute == 0))
    midnights = midnights if len(midnights) else np.array([0])
    ax.set_xticks(midnights, [t.strftime("%a\n%Y-%m-%d") for t in ts[midnights]], fontsize="small")
    ticks = np.unique(np.linspace(0, len(sensors) - 1, min(8, len(sensors))).round().astype(int))
    ax.set_yticks(ticks, sensors[ticks])
    shown = f" ({len(sensors)} of {ds.num_sensors}, evenly spaced)" if len(sensors) < ds.num_sensors else ""
    ax.set_ylabel("sensor" + shown)
    missing = float((block == 0).mean())
    ax.set_title(f"{ds.name}: first {steps / ds.steps_per_day:g} days (missing = red, {100 * missing:.2f} % of cells)")
    ax.figure.colorbar(image, ax=ax, label=ds.value_label, pad=0.01)
    return _stamp(ax, ds)


def sensor_graph(ds: Dataset, ax=None):
    """The sensor graph in a spectral layout, nodes coloured by mean value (missing excluded)."""
    ax = _axes(ax, (7, 6))
    pos = spectral_layout(ds.edges, ds.num_sensors)
    src, dst = ds.edges["from"].to_numpy(np.int64), ds.edges["to"].to_numpy(np.int64)
    src, dst = src[src != dst], dst[src != dst]
    ax.add_collection(LineCollection(np.stack([pos[src], pos[dst]], axis=1), colors="0.6", linewidths=0.8, zorder=1))
    with np.errstate(invalid="ignore"):
        mean_value = np.nanmean(_missing_as_nan(ds.target), axis=0)
    size = max(8, 2400 / max(ds.num_sensors, 1) ** 0.9)
    nodes = ax.scatter(*pos.T, size, mean_value, cmap="viridis", edgecolors="k", linewidths=0.3, zorder=2)
    ax.figure.colorbar(nodes, ax=ax, label=f"mean {ds.value_label}", shrink=0.8)
    components = len(np.unique(connected_components(ds.edges, ds.num_sensors)))
    ax.set_title(f"{ds.name}: {ds.num_sensors} sensors, {len(ds.edges)} edges, {components} component(s)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_axis_off()
    return _stamp(ax, ds)


def value_distribution(ds: Dataset, ax=None, bins: int = 60):
    """Histogram of the non-missing target values, with the share of zeros (missing) in the title."""
    ax = _axes(ax, (7, 4))
    values = ds.target.ravel()
    zero_share = float((values == 0).mean())
    ax.hist(values[values != 0], bins=bins, color="tab:blue", alpha=0.8)
    ax.set(xlabel=f"{ds.value_label}, non-missing values", ylabel="count")
    ax.set_title(f"{ds.name}: value distribution ({100 * zero_share:.2f} % zeros = missing, not shown)")
    ax.grid(alpha=0.3)
    return _stamp(ax, ds)


def correlation_vs_distance(ds: Dataset, ax=None, max_hops: int = 10, max_far_pairs: int = 20000):
    """Correlation of sensors' training-row deviations from their weekday/weekend daily profile against hop distance."""
    ax = _axes(ax, (9, 4.5))
    table = correlation_by_hops(ds, max_hops=max_hops, max_far_pairs=max_far_pairs)
    order = [str(h) for h in range(1, max_hops + 1)] + [f">{max_hops}", UNCONNECTED]
    groups = [g for g in order if (table["group"] == g).any()]
    data = [table.loc[table["group"] == g, "corr"].to_numpy() for g in groups]
    if data:
        ax.boxplot(data, showfliers=False, widths=0.6, medianprops=dict(color="tab:blue"))
        ax.plot([], [], color="tab:blue", label="median")
        ax.plot(range(1, len(data) + 1), [d.mean() for d in data], "o", color="tab:red", ms=4, label="mean")
        ax.set_xticks(range(1, len(groups) + 1), [f"{g}\n({len(d)})" for g, d in zip(groups, data)], fontsize="small")
        legend_outside(ax)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="hops on the undirected sensor graph (pairs)", ylabel="correlation of deviations")
    title = f"{ds.name}: correlation of deviations from each sensor's daily profile\n"
    ax.set_title(title + "(weekday/weekend profiles, train rows; box = quartiles, whiskers 1.5 IQR)", fontsize="medium")
    ax.grid(alpha=0.3, axis="y")
    return _stamp(ax, ds, f"none (correlations of {ds.value_label})")
