"""Tests for stlib.reporting.plots: the pure graph/series helpers and a smoke test of every figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from stlib.data.core import Dataset, chronological_splits  # noqa: E402
from stlib.reporting import plots  # noqa: E402

HOURLY = 60  # interval in minutes: 24 steps per day keeps the test datasets tiny


def edge_frame(pairs) -> pd.DataFrame:
    pairs = list(pairs)
    return pd.DataFrame(
        {"from": [a for a, _ in pairs], "to": [b for _, b in pairs], "cost": np.ones(len(pairs))}
    ).astype({"from": np.int64, "to": np.int64})


def chain(n: int) -> pd.DataFrame:
    return edge_frame((i, i + 1) for i in range(n - 1))


def make_dataset(series: np.ndarray, edges: pd.DataFrame, start="2024-01-01 00:00") -> Dataset:
    series = series.astype(np.float32)
    if series.ndim == 2:
        series = series[:, :, None]
    return Dataset(
        name="tiny",
        series=series,
        start_time=pd.Timestamp(start),
        interval_minutes=HOURLY,
        edges=edges,
        splits=chronological_splits(len(series), 4),
        in_steps=2,
        out_steps=2,
    )


def chain_dataset(n: int = 10, days: int = 14, missing: float = 0.01, seed: int = 0) -> Dataset:
    """Daily cycle times sensor capacity, plus noise that is smooth along the chain (neighbours correlated)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    cycle = 1.5 + np.sin(2 * np.pi * (t % 24) / 24)
    shocks = rng.normal(size=(len(t), n))
    kernel = 0.6 ** np.abs(np.subtract.outer(np.arange(n), np.arange(n)))  # decays with hop distance
    noise = shocks @ kernel
    values = 100 * cycle[:, None] * rng.uniform(1, 3, n)[None] + 10 * noise
    values = np.maximum(values, 1.0)
    values[rng.random(values.shape) < missing] = 0.0
    return make_dataset(values, chain(n))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---- graph helpers ---------------------------------------------------------------------------


def test_hop_distances_on_a_chain_with_an_isolated_node():
    # 0 -> 1 -> 2 -> 3 (directed, but hops are undirected), 4 isolated, duplicate and self-loop ignored
    edges = edge_frame([(0, 1), (1, 2), (2, 3), (1, 0), (2, 2)])
    hops = plots.hop_distances(edges, 5)
    expected = np.array([[0, 1, 2, 3, -1], [1, 0, 1, 2, -1], [2, 1, 0, 1, -1], [3, 2, 1, 0, -1], [-1, -1, -1, -1, 0]])
    np.testing.assert_array_equal(hops, expected)


def test_hop_distances_take_the_shortest_path():
    # a 6-cycle with a chord 0-3: 0 to 4 is two hops via 3, not via 5 (also two); 1 to 4 is 3 hops without chord
    edges = edge_frame([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 3)])
    hops = plots.hop_distances(edges, 6)
    assert hops[1, 4] == 3 and hops[0, 4] == 2 and hops[1, 3] == 2 and hops[2, 5] == 3
    np.testing.assert_array_equal(hops, hops.T)


def test_connected_components():
    edges = edge_frame([(0, 1), (3, 2)])
    labels = plots.connected_components(edges, 5)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2])


@pytest.mark.parametrize(
    "edges, n",
    [
        (chain(8), 8),
        (edge_frame([(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (7, 5)]), 10),  # two chains, a triangle, 2 isolated
        (edge_frame([]), 7),  # no edges at all
        (edge_frame([]), 1),
        (edge_frame([(0, 1)]), 2),
        (edge_frame([(0, 1), (0, 2), (0, 3), (0, 4)]), 5),  # star: degenerate Laplacian eigenvalues
    ],
)
def test_spectral_layout_shape_finite_and_distinct(edges, n):
    pos = plots.spectral_layout(edges, n)
    assert pos.shape == (n, 2)
    assert np.isfinite(pos).all()
    if n > 1:  # no two nodes on top of each other
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        assert d[~np.eye(n, dtype=bool)].min() > 1e-6


def test_spectral_layout_keeps_a_chain_in_order():
    fiedler = plots.spectral_layout(chain(8), 8, refine=False)[:, 0]  # plain eigenmap: first axis orders the path
    assert np.all(np.diff(fiedler) > 0) or np.all(np.diff(fiedler) < 0)
    pos = plots.spectral_layout(chain(8), 8)  # stress-refined: distance from one end grows along the path
    assert np.all(np.diff(np.linalg.norm(pos - pos[0], axis=1)) > 0)


def test_spectral_layout_is_deterministic():
    edges = edge_frame([(0, 1), (1, 2), (2, 3), (3, 0), (2, 4), (5, 6)])
    np.testing.assert_array_equal(plots.spectral_layout(edges, 8), plots.spectral_layout(edges, 8))


# ---- series helpers --------------------------------------------------------------------------


def test_deviation_series_removes_the_daily_profile_and_marks_missing():
    rng = np.random.default_rng(1)
    steps_per_day, days, n = 24, 6, 3
    tod = np.tile(np.arange(steps_per_day), days)
    profile = rng.uniform(50, 100, size=(steps_per_day, n))
    values = profile[tod] + rng.normal(size=(len(tod), n))
    values[5, 1] = 0.0
    dev = plots.deviation_series(values, tod, steps_per_day)
    assert np.isnan(dev[5, 1]) and np.isfinite(np.delete(dev.ravel(), 5 * n + 1)).all()
    for slot in range(steps_per_day):  # mean deviation per slot and sensor is zero
        np.testing.assert_allclose(np.nanmean(dev[tod == slot], axis=0), 0.0, atol=1e-9)
    assert np.nanstd(dev) < 1.5  # only the unit noise is left


def test_deviation_series_separates_weekend_profiles():
    steps_per_day = 24
    tod = np.tile(np.arange(steps_per_day), 7)
    weekend = np.repeat(np.arange(7) >= 5, steps_per_day)
    values = np.where(weekend, 50.0, 100.0)[:, None] + np.zeros((1, 2))
    np.testing.assert_allclose(plots.deviation_series(values, tod, steps_per_day, weekend=weekend), 0.0)
    assert np.abs(plots.deviation_series(values, tod, steps_per_day)).max() > 10


def test_series_correlation_matches_numpy_and_ignores_nan():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4))
    x[:, 1] += x[:, 0]
    np.testing.assert_allclose(plots.series_correlation(x), np.corrcoef(x.T), atol=1e-12)
    x[3, 2] = np.nan
    corr = plots.series_correlation(x)
    assert np.isfinite(corr).all() and np.allclose(np.diag(corr), 1.0)


def test_hop_correlation_table_groups_and_subsamples_far_pairs_only():
    n = 30
    hops = plots.hop_distances(edge_frame([(i, i + 1) for i in range(19)]), n)  # chain 0..19, 20..29 isolated
    corr = np.ones((n, n))
    full = plots.hop_correlation_table(corr, hops, max_hops=3, max_far_pairs=10**6)
    assert len(full) == n * (n - 1) // 2
    assert set(full["group"]) == {"1", "2", "3", ">3", plots.UNCONNECTED}
    assert (full.loc[full["group"] == "1", "hops"] == 1).all() and (full.loc[full["group"] == ">3", "hops"] > 3).all()
    small = plots.hop_correlation_table(corr, hops, max_hops=3, max_far_pairs=50)
    near = full["hops"].between(1, 3)
    assert (~small["hops"].between(1, 3)).sum() == 50
    assert small["hops"].between(1, 3).sum() == near.sum()
    assert small.equals(plots.hop_correlation_table(corr, hops, max_hops=3, max_far_pairs=50))  # seeded


def test_correlation_falls_with_hops_when_neighbours_are_correlated():
    table = plots.correlation_by_hops(chain_dataset(), max_hops=5)
    means = table.groupby("group")["corr"].mean()
    assert means["1"] > 0.5
    assert means["1"] > means["2"] > means["3"] > means[">5"]


def test_daily_profile_table():
    ds = chain_dataset(days=14)
    table = plots.daily_profile_table(ds)
    assert set(table["day_type"]) == {"weekday", "weekend"}
    assert len(table) == 2 * 24 and table["hour"].between(0, 24).all()
    assert (table["q25"] <= table["q75"]).all() and table["mean"].gt(0).all()


def test_data_overview_is_a_one_column_table():
    ds = chain_dataset()
    table = plots.data_overview(ds)
    assert list(table.columns) == ["value"]
    assert table.loc["dataset", "value"] == "tiny"
    assert table.loc["train windows", "value"].startswith(str(len(ds.splits["train"])))
    assert "missing share (value 0)" in table.index


# ---- figures ---------------------------------------------------------------------------------

DATA_FIGURES = (plots.daily_profile, plots.sensor_heatmap, plots.sensor_graph, plots.value_distribution)
DATA_FIGURES += (plots.correlation_vs_distance,)


@pytest.mark.parametrize(
    "edges",
    [chain(10), edge_frame([]), edge_frame([(0, 1), (2, 3), (3, 4)])],
    ids=["chain", "no-edges", "disconnected"],
)
def test_every_plot_draws(edges):
    ds = chain_dataset()
    ds.edges = edges
    for figure in DATA_FIGURES:
        ax = figure(ds)
        assert ax.get_title(), figure.__name__
        ax.figure.canvas.draw()
    fig, axes = plt.subplots(2, 3)
    plots.daily_profile(ds, ax=axes[0, 0])
    plots.sensor_heatmap(ds, days=2, max_sensors=4, ax=axes[0, 1])
    plots.sensor_graph(ds, ax=axes[0, 2])
    plots.value_distribution(ds, ax=axes[1, 0])
    plots.correlation_vs_distance(ds, ax=axes[1, 1], max_hops=2)
    fig.canvas.draw()


def test_heatmap_labels_dates_and_partial_first_day():
    ds = chain_dataset()
    ds2 = make_dataset(ds.series, ds.edges, start="2024-01-01 05:00")
    ax = plots.sensor_heatmap(ds2, days=3)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Tue\n2024-01-02", "Wed\n2024-01-03", "Thu\n2024-01-04"]  # the midnights inside the 72 steps
