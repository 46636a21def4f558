"""Tests for the seeded PeMS-like generator in stlib.data.synthetic."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from stlib.data.synthetic import generate

STEPS_PER_DAY = 288  # 5-minute intervals


@pytest.fixture(scope="module")
def default():
    """The default dataset (48 sensors, 21 days, 0.5 % missing)."""
    return generate()


@pytest.fixture(scope="module")
def clean():
    """The default network without missing values, for the statistics tests."""
    return generate(missing_share=0.0)


def _undirected_components(n: int, edges: pd.DataFrame) -> int:
    """Number of connected components of the graph viewed undirected (union-find)."""
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(edges["from"].tolist(), edges["to"].tolist()):
        parent[find(a)] = find(b)
    return len({find(a) for a in range(n)})


def _weekend_flags(start: pd.Timestamp, t_len: int) -> np.ndarray:
    """(T,) True on Saturdays and Sundays, from the real calendar."""
    stamps = pd.date_range(start, periods=t_len, freq="5min")
    return stamps.day_of_week.to_numpy() >= 5


def _residuals(series: np.ndarray, start: pd.Timestamp) -> np.ndarray:
    """(T, N) flow minus each sensor's mean at the same time of day and day type (weekday/weekend)."""
    x = series[..., 0].astype(np.float64)
    t_len = x.shape[0]
    tod = np.arange(t_len) % STEPS_PER_DAY
    weekend = _weekend_flags(start, t_len)
    res = np.empty_like(x)
    for flag in (False, True):
        rows = np.flatnonzero(weekend == flag)
        sums = np.zeros((STEPS_PER_DAY, x.shape[1]))
        np.add.at(sums, tod[rows], x[rows])
        counts = np.bincount(tod[rows], minlength=STEPS_PER_DAY)[:, None]
        res[rows] = x[rows] - (sums / counts)[tod[rows]]
    return res


def _lagged_corr(lead: np.ndarray, follow: np.ndarray, lag: int) -> float:
    """Correlation of lead[t - lag] with follow[t]."""
    return float(np.corrcoef(lead[:-lag], follow[lag:])[0, 1])


def _best_lagged_corr(lead: np.ndarray, follow: np.ndarray) -> float:
    """Largest lagged correlation over lags of 1-3 steps (5-15 minutes)."""
    return max(_lagged_corr(lead, follow, lag) for lag in (1, 2, 3))


def _non_neighbour_pairs(n: int, edges: pd.DataFrame, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Random ordered sensor pairs that share no edge in either direction."""
    adjacent = set(zip(edges["from"], edges["to"])) | set(zip(edges["to"], edges["from"]))
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < count:
        a, b = (int(v) for v in rng.integers(0, n, 2))
        if a != b and (a, b) not in adjacent:
            pairs.append((a, b))
    return pairs


# ---- shape, determinism, missing values ----------------------------------------------------------
def test_shape_dtype_and_start(default):
    series, start, _ = default
    assert series.shape == (21 * STEPS_PER_DAY, 48, 1)
    assert series.dtype == np.float32
    assert start == pd.Timestamp("2024-01-01 00:00")
    assert np.array_equal(series, np.round(series)), "flows are whole vehicles"
    assert generate(num_sensors=6, num_days=2, interval_minutes=15)[0].shape == (2 * 96, 6, 1)


def test_deterministic_per_seed():
    a, _, ea = generate(num_sensors=12, num_days=3, seed=3)
    b, _, eb = generate(num_sensors=12, num_days=3, seed=3)
    c, _, ec = generate(num_sensors=12, num_days=3, seed=4)
    assert np.array_equal(a, b)
    pd.testing.assert_frame_equal(ea, eb)
    assert not np.array_equal(a, c)
    assert (a != c).mean() > 0.5, "another seed must give substantially different data"
    assert not ea.equals(ec)


def test_missing_share_and_values(default):
    series, _, _ = default
    assert not np.isnan(series).any()
    assert (series >= 0).all()
    assert abs((series == 0).mean() - 0.005) < 0.001

    assert (generate(num_sensors=8, num_days=2, missing_share=0.0)[0] > 0).all(), "0 only means missing"
    heavy = generate(num_sensors=8, num_days=2, missing_share=0.2)[0]
    assert abs((heavy == 0).mean() - 0.2) < 0.01


def test_missing_values_come_in_short_runs(default):
    zero = default[0][..., 0] == 0  # (T, N)
    padded = np.pad(zero, ((1, 1), (0, 0))).astype(np.int8)
    step = np.diff(padded, axis=0)
    runs = np.flatnonzero(step.T.ravel() == -1) - np.flatnonzero(step.T.ravel() == 1)
    assert (runs == 1).sum() > 0, "single dropped readings"
    assert (runs >= 3).sum() > 0, "short sensor outages"
    assert runs.max() <= 4 * 12, "outages stay short (at most a few hours)"


# ---- graph ---------------------------------------------------------------------------------------
def test_edges_form_connected_road_graph(default):
    series, _, edges = default
    n = series.shape[1]
    assert list(edges.columns) == ["from", "to", "cost"]
    assert pd.api.types.is_integer_dtype(edges["from"]) and pd.api.types.is_integer_dtype(edges["to"])
    assert pd.api.types.is_float_dtype(edges["cost"])
    ids = np.concatenate([edges["from"], edges["to"]])
    assert ids.min() >= 0 and ids.max() < n
    assert set(ids.tolist()) == set(range(n)), "every sensor is on the network"
    assert (edges["from"] != edges["to"]).all()
    assert edges["cost"].between(0.5, 3.0).all(), "road distances in km"
    assert _undirected_components(n, edges) == 1
    assert edges["to"].value_counts().max() >= 2, "some sensor is a merge point"


def test_large_graph_is_connected():
    series, _, edges = generate(num_sensors=1000, num_days=2, seed=5)
    assert series.shape == (2 * STEPS_PER_DAY, 1000, 1)
    assert _undirected_components(1000, edges) == 1


# ---- temporal realism ----------------------------------------------------------------------------
def test_weekday_rush_hours_and_weekend(clean):
    series, start, _ = clean
    x = series[..., 0].reshape(21, STEPS_PER_DAY, -1)  # (days, slots, N)
    weekday = pd.date_range(start, periods=21, freq="D").day_of_week.to_numpy() < 5

    def mean_at(hour: float, days: np.ndarray) -> float:
        return float(x[days, int(hour * 12)].mean())

    night = mean_at(3.0, weekday)
    assert mean_at(8.0, weekday) > 4 * night
    assert mean_at(17.5, weekday) > 4 * night
    assert mean_at(8.0, weekday) > 1.5 * mean_at(8.0, ~weekday), "weekends have no morning rush"
    assert mean_at(8.0, weekday) > 1.2 * mean_at(12.0, weekday), "the morning rush is a peak"
    assert mean_at(13.0, ~weekday) > 1.5 * mean_at(8.0, ~weekday), "weekend hump is around midday"


def test_start_weekday_follows_calendar():
    # 2024-01-06 is a Saturday: days 0-1 are a weekend, day 2 is a Monday
    series, _, _ = generate(num_sensors=16, num_days=3, start_time="2024-01-06 00:00", missing_share=0.0)
    at_eight = series[:, :, 0].reshape(3, STEPS_PER_DAY, -1)[:, 8 * 12].mean(axis=1)
    assert at_eight[2] > 1.5 * at_eight[0] and at_eight[2] > 1.5 * at_eight[1]


# ---- spatial signal ------------------------------------------------------------------------------
def test_upstream_deviation_leads_downstream(clean):
    series, start, edges = clean
    res = _residuals(series, start)
    up, down = edges["from"].to_numpy(), edges["to"].to_numpy()

    forward = np.array([_best_lagged_corr(res[:, u], res[:, v]) for u, v in zip(up, down)])
    backward = np.array([_best_lagged_corr(res[:, v], res[:, u]) for u, v in zip(up, down)])
    pairs = _non_neighbour_pairs(series.shape[1], edges, 100)
    unrelated = np.array([_best_lagged_corr(res[:, a], res[:, b]) for a, b in pairs])

    assert forward.mean() > 0.3
    assert (forward > 0).mean() > 0.9
    assert forward.mean() > unrelated.mean() + 0.2, "neighbours share far more than random pairs"
    assert forward.mean() > backward.mean() + 0.05, "the signal flows upstream -> downstream"


def test_upstream_history_improves_one_step_forecast(clean):
    series, start, edges = clean
    res = _residuals(series, start)
    t_len, p = res.shape[0], 3
    split = 2 * t_len // 3

    def oos_r2(columns: list[np.ndarray], y: np.ndarray) -> float:
        """Out-of-sample R^2 of a least-squares fit on the first two thirds."""
        x = np.column_stack([np.ones_like(y), *columns])
        coef = np.linalg.lstsq(x[:split], y[:split], rcond=None)[0]
        err = y[split:] - x[split:] @ coef
        return 1.0 - err.var() / y[split:].var()

    gains = []
    for u, v in zip(edges["from"], edges["to"]):
        y = res[p:, v]
        own = [res[p - k - 1 : t_len - k - 1, v] for k in range(p)]
        upstream = [res[p - k - 1 : t_len - k - 1, u] for k in range(p)]
        gains.append(oos_r2(own + upstream, y) - oos_r2(own, y))
    gains = np.array(gains)
    assert gains.mean() > 0.03, f"upstream history adds little: mean R^2 gain {gains.mean():.3f}"
    assert (gains > 0).mean() > 0.8


# ---- arguments and speed -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_sensors": 3}, "num_sensors"),
        ({"num_sensors": 10.5}, "num_sensors"),
        ({"num_days": 1}, "num_days"),
        ({"interval_minutes": 7}, "interval_minutes"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"missing_share": 0.5}, "missing_share"),
        ({"missing_share": -0.01}, "missing_share"),
        ({"start_time": "not a date"}, "start_time"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate(**kwargs)


def test_default_generation_is_fast():
    began = time.perf_counter()
    generate(seed=11)
    assert time.perf_counter() - began < 1.5
