"""Deterministic, seeded generator of a PeMS-like traffic-flow dataset (numpy + pandas only).

mean[t, i] = capacity_i * profile_i(time of day, weekday/weekend) * exp(D[t, i] + day_level + jitter) * incident[t, i];
flow = Poisson(mean), at least 1; missing values are exactly 0. Sensors sit on directed highway chains; each chain
after the first merges into the middle of an earlier one (a connected tree). The demand deviation D is an AR(1)
process injected at chain heads and unobserved on-ramps; every other sensor inherits the weighted, attenuated
deviation of its upstream sensors 1-3 steps earlier, so neighbours' recent history carries predictive signal.
Incidents drop flow for 30-120 minutes with a weakening shockwave upstream and a milder dip downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd

__all__ = ["generate"]

# network
_MEAN_CHAIN_LENGTH = 12  # sensors per highway chain on average
_SEGMENT_KM = (0.5, 3.0)  # road distance between consecutive sensors
# Demand deviations travel as platoons / density waves that disperse and weave at ramps, so their
# effective speed is far below free-flow speed; 0.2 km/min gives 1-3 steps of lag at 5 minutes.
_WAVE_KM_PER_MIN = 0.2
_ATTENUATION = (0.8, 0.95)  # share of an upstream deviation that survives one segment
_ON_RAMP_SHARE = 0.25  # fraction of non-head sensors fed by an (unobserved) on-ramp
_ON_RAMP_WEIGHT = (0.15, 0.35)  # volume share of that on-ramp at its sensor
# demand processes: (time constant in minutes, stationary std of log-flow)
_DEMAND_FAST = (30.0, 0.16)  # platoons, local events: the part neighbours reveal early
_DEMAND_SLOW = (240.0, 0.07)  # slowly drifting demand level
_LOCAL = (15.0, 0.04)  # per-sensor churn (small ramps, lane changes) nobody else sees
_DAY_LEVEL_SHARED = 0.03  # network-wide day-to-day level (weather, season)
_DAY_LEVEL_SENSOR = 0.02  # per-sensor day-to-day level
_JITTER = 0.02  # i.i.d. multiplicative noise on top of Poisson counting noise
# capacity and incidents
_CAPACITY = (200.0, 600.0)  # vehicles per 5 minutes at the daily peak
_HEADROOM = 0.3  # surges saturate smoothly at (1 + _HEADROOM) * capacity: lanes carry only so much
_NIGHT_SHARE = (0.07, 0.13)  # night flow as a share of peak (20-60 vehicles per 5 minutes)
_INCIDENTS_PER_SENSOR_DAY = 4.0 / (7 * 48)  # "a few per week" on a 48-sensor network
_INCIDENT_MINUTES = (30, 120)
_RECOVERY_MINUTES = (15, 45)
_INCIDENT_SEVERITY = (0.35, 0.75)  # fraction of flow lost at the incident sensor
_SHOCK_DECAY = 0.65  # severity kept per segment as the queue spills upstream
_SHOCK_MIN_SEVERITY = 0.08  # the shockwave is ignored once it is this weak
_DOWNSTREAM_DIP = 0.4  # severity share seen by the next sensor downstream (metered discharge)


@dataclass
class _Network:
    """Directed sensor graph in generation order (node g is reported as sensor id perm[g])."""

    src: np.ndarray  # (E,) upstream node
    dst: np.ndarray  # (E,) downstream node
    km: np.ndarray  # (E,) road distance
    chain: np.ndarray  # (N,) chain each node belongs to
    level: np.ndarray  # (N,) longest path from any source: propagation order
    perm: np.ndarray  # (N,) node -> public sensor id


def generate(
    num_sensors: int = 48,
    num_days: int = 21,
    seed: int = 0,
    interval_minutes: int = 5,
    start_time: str = "2024-01-01 00:00",
    missing_share: float = 0.005,
) -> tuple[np.ndarray, pd.Timestamp, pd.DataFrame]:
    """-> (series float32 (T, N, 1) vehicles per interval with 0 = missing, start Timestamp, edges from/to/cost
    with cost = road km); T = num_days * (1440 // interval_minutes). Same arguments give bit-identical output."""
    _validate(num_sensors, num_days, interval_minutes, missing_share)
    try:
        start = pd.Timestamp(start_time)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"start_time must be a parseable timestamp, got {start_time!r}") from exc
    if pd.isna(start):
        raise ValueError(f"start_time must be a timestamp, got {start_time!r}")

    rng = np.random.default_rng(seed)
    n, steps_per_day = int(num_sensors), 1440 // int(interval_minutes)
    t_len = int(num_days) * steps_per_day
    net = _build_network(n, rng)
    # per step (T,): slot of the day on a grid offset so that the steps land on it, calendar day, weekend flag
    k = int(_start_minute(start) // interval_minutes) + np.arange(t_len)
    slot, day = k % steps_per_day, k // steps_per_day
    weekend = (start.day_of_week + day) % 7 >= 5  # real calendar: 5 = Saturday, 6 = Sunday
    # (N,) peak flow per 5 minutes; merge targets carry extra volume from the joining chain
    base, merges = rng.uniform(*_CAPACITY, n), net.chain[net.src] != net.chain[net.dst]
    capacity = base.copy()
    np.add.at(capacity, net.dst[merges], 0.3 * base[net.src[merges]])
    capacity = np.minimum(capacity, _CAPACITY[1])
    profiles = _daily_profiles(net, start, interval_minutes, rng)  # (2, S, N): weekday, weekend
    deviation = _propagated_demand(net, capacity, t_len, interval_minutes, rng)  # (T, N) log-flow
    days = int(day[-1]) + 1
    day_level = rng.normal(0.0, _DAY_LEVEL_SHARED, (days, 1)) + rng.normal(0.0, _DAY_LEVEL_SENSOR, (days, n))
    incident = _incident_factors(net, t_len, slot, steps_per_day, interval_minutes, rng)  # (T, N)

    log_dev = deviation + day_level[day] + rng.normal(0.0, _JITTER, (t_len, n))  # (T, N)
    demand = capacity * profiles[weekend.astype(np.intp), slot] * np.exp(log_dev)  # (T, N)
    room = _HEADROOM * capacity  # demand above capacity saturates smoothly (tanh) at capacity + room
    mean = (np.minimum(demand, capacity) + room * np.tanh(np.maximum(demand - capacity, 0.0) / room)) * incident
    flow = np.maximum(rng.poisson(mean), 1).astype(np.float32)  # observed counts are never 0
    flow[_missing_mask(t_len, n, float(missing_share), interval_minutes, rng)] = 0.0

    series = np.empty_like(flow)
    series[:, net.perm] = flow  # report nodes under shuffled ids, as real sensor ids are arbitrary
    edges = pd.DataFrame({"from": net.perm[net.src], "to": net.perm[net.dst], "cost": np.round(net.km, 3)})
    return series[:, :, None], start, edges.sort_values(["from", "to"], ignore_index=True)


def _validate(num_sensors, num_days, interval_minutes, missing_share) -> None:
    """Raise ValueError naming the first bad argument."""
    for name, value, minimum in (("num_sensors", num_sensors, 4), ("num_days", num_days, 2)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    iv = interval_minutes
    if isinstance(iv, bool) or not isinstance(iv, Integral) or not 1 <= iv <= 1440 or 1440 % iv:
        raise ValueError(f"interval_minutes must be a positive integer dividing 1440, got {interval_minutes!r}")
    try:
        share = float(missing_share)
    except (TypeError, ValueError):
        share = float("nan")
    if not 0.0 <= share < 0.5:  # also rejects NaN
        raise ValueError(f"missing_share must be in [0, 0.5), got {missing_share!r}")


def _start_minute(start: pd.Timestamp) -> float:
    return start.hour * 60 + start.minute + start.second / 60.0


def _build_network(n: int, rng: np.random.Generator) -> _Network:
    """Split n sensors into highway chains; every chain after the first merges into an earlier one."""
    n_chains = min(max(2, round(n / _MEAN_CHAIN_LENGTH)), n // 2)
    # at least 2 sensors per chain so a chain always has a non-head sensor to merge into
    lengths = 2 + rng.multinomial(n - 2 * n_chains, rng.dirichlet(np.full(n_chains, 2.0)))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    chain = np.repeat(np.arange(n_chains), lengths)  # (N,)
    along = np.flatnonzero(chain[:-1] == chain[1:])  # consecutive sensors of the same chain
    # chain k > 0 ends by merging into a non-head sensor of a random earlier chain j < k: a tree, no cycles
    k = np.arange(1, n_chains)
    j = np.floor(rng.random(n_chains - 1) * k).astype(np.int64)
    target = starts[j] + 1 + np.floor(rng.random(n_chains - 1) * (lengths[j] - 1)).astype(np.int64)
    src = np.concatenate([along, starts[k] + lengths[k] - 1])
    dst = np.concatenate([along + 1, target])
    km = rng.uniform(*_SEGMENT_KM, src.size)
    level = np.zeros(n, dtype=np.int64)  # longest-path depth (0 for sources), by repeated relaxation over the DAG
    while True:
        relaxed = level.copy()
        np.maximum.at(relaxed, dst, level[src] + 1)
        if np.array_equal(relaxed, level):
            break
        level = relaxed
    return _Network(src, dst, km, chain, level, rng.permutation(n))


def _lag_steps(km: np.ndarray, interval: int) -> np.ndarray:
    """Travel-time lag of a demand wave over each edge, in whole steps (at least 1)."""
    return np.maximum(np.rint(km / _WAVE_KM_PER_MIN / interval), 1).astype(np.int64)


def _daily_profiles(net: _Network, start: pd.Timestamp, interval: int, rng: np.random.Generator) -> np.ndarray:
    """(2, S, N) expected flow as a share of capacity: [0] weekday, [1] weekend."""
    n, n_chains = net.chain.size, int(net.chain.max()) + 1
    offset = _start_minute(start) % interval  # grid minutes coincide with the actual step times
    shift = rng.uniform(-20.0, 20.0, n) / 60.0  # per-sensor phase shift, hours
    h = ((offset + interval * np.arange(1440 // interval)) / 60.0)[:, None] - shift  # (S, N) hours
    # a chain carries more morning (inbound) or more evening (outbound) commuters
    bias = rng.uniform(-0.15, 0.15, n_chains)[net.chain] + rng.uniform(-0.05, 0.05, n)
    am, pm = 0.5 + bias, 0.5 - bias  # (N,) rush-hour amplitudes on top of the daytime plateau
    night = rng.uniform(*_NIGHT_SHARE, n)
    # weekday: daytime plateau from ~5:30 to ~23:00 plus morning (8:00) and evening (17:30) peaks
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
    plateau = sigmoid((h - 5.5) / 0.6) * sigmoid((23.0 - h) / 1.0)
    weekday = plateau + am * np.exp(-0.5 * ((h - 8.0) / 1.1) ** 2) + pm * np.exp(-0.5 * ((h - 17.5) / 1.4) ** 2)
    weekday = night + (1.0 - night) * weekday / weekday.max(axis=0)
    # weekend: later start, one broad midday hump, lower overall, slightly livelier nights
    hump = sigmoid((h - 7.5) / 1.2) * sigmoid((23.5 - h) / 1.2) * (0.7 + 0.3 * np.exp(-0.5 * ((h - 13.5) / 3.0) ** 2))
    level = rng.uniform(0.6, 0.8, n)
    return np.stack([weekday, 1.3 * night + (level - 1.3 * night) * hump / hump.max(axis=0)])


def _ar1(t_len: int, tau_minutes: np.ndarray, std: np.ndarray, interval: int, rng: np.random.Generator) -> np.ndarray:
    """(T, M) stationary AR(1) columns with the given time constants and standard deviations."""
    phi = np.exp(-interval / tau_minutes)  # (M,)
    shocks = rng.standard_normal((t_len, phi.size)) * (std * np.sqrt(1.0 - phi**2))
    out = np.empty_like(shocks)
    out[0] = rng.standard_normal(phi.size) * std  # start in the stationary distribution
    for t in range(1, t_len):  # sequential in time, vectorised over columns
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def _propagated_demand(net: _Network, capacity, t_len: int, interval: int, rng: np.random.Generator) -> np.ndarray:
    """(T, N) log-flow deviation: sources inject demand, downstream sensors inherit it with lags."""
    n = net.chain.size
    has_upstream = np.zeros(n, dtype=bool)
    has_upstream[net.dst] = True
    heads = np.flatnonzero(~has_upstream)
    ramps = np.flatnonzero(has_upstream & (rng.random(n) < _ON_RAMP_SHARE))
    ramp_weight = np.zeros(n)
    ramp_weight[ramps] = rng.uniform(*_ON_RAMP_WEIGHT, ramps.size)

    # one stacked AR(1) run: a fast and a slow demand component per source, plus local churn per sensor
    n_src = heads.size + ramps.size
    tau, std = (np.repeat(v, [n_src, n_src, n]) for v in zip(_DEMAND_FAST, _DEMAND_SLOW, _LOCAL))
    ar = _ar1(t_len, tau, std, interval, rng)  # (T, 2 * n_src + N)
    source = ar[:, :n_src] + ar[:, n_src : 2 * n_src]  # (T, n_src)
    deviation = ar[:, 2 * n_src :].copy()  # (T, N) local churn everywhere
    deviation[:, heads] += source[:, : heads.size]
    deviation[:, ramps] += ramp_weight[ramps] * source[:, heads.size :]

    # volume share of each in-edge among the edges entering the same sensor (merges add flow)
    inflow = np.zeros(n)
    np.add.at(inflow, net.dst, capacity[net.src])
    weight = capacity[net.src] / inflow[net.dst] * (1.0 - ramp_weight[net.dst])
    weight *= rng.uniform(*_ATTENUATION, net.src.size)  # (E,)
    lag = _lag_steps(net.km, interval)  # (E,)
    # upstream sensors are final before their downstream ones: sweep the DAG level by level
    time = np.arange(t_len)[:, None]
    for lvl in range(1, int(net.level.max()) + 1):
        e = np.flatnonzero(net.level[net.dst] == lvl)
        e = e[np.argsort(net.dst[e], kind="stable")]
        past = deviation[np.maximum(time - lag[e], 0), net.src[e]]  # (T, E_lvl) upstream `lag` steps ago
        targets, first = np.unique(net.dst[e], return_index=True)
        deviation[:, targets] += np.add.reduceat(past * weight[e], first, axis=1)
    return deviation


def _incident_factors(net: _Network, t_len: int, slot, steps_per_day: int, interval: int, rng) -> np.ndarray:
    """(T, N) multiplicative flow factor (1 = normal) from incidents and their shockwaves."""
    n = net.chain.size
    factor = np.ones((t_len, n))
    n_incidents = rng.poisson(_INCIDENTS_PER_SENSOR_DAY * n * t_len / steps_per_day)
    if n_incidents == 0:
        return factor
    # incidents happen in the daytime (6:00-21:00), when there is traffic to block
    daytime = np.flatnonzero((slot >= 360 // interval) & (slot < 1260 // interval))
    begin = daytime[rng.integers(0, daytime.size, n_incidents)] if daytime.size else rng.integers(0, t_len, n_incidents)
    where = rng.integers(0, n, n_incidents)
    duration = np.maximum(1, np.rint(rng.uniform(*_INCIDENT_MINUTES, n_incidents) / interval)).astype(np.int64)
    recovery = np.rint(rng.uniform(*_RECOVERY_MINUTES, n_incidents) / interval).astype(np.int64)
    severity = rng.uniform(*_INCIDENT_SEVERITY, n_incidents)

    upstream, downstream = [[] for _ in range(n)], [[] for _ in range(n)]  # node -> [(neighbour, lag)]
    for s, d, lg in zip(net.src.tolist(), net.dst.tolist(), _lag_steps(net.km, interval).tolist()):
        upstream[d].append((s, lg))
        downstream[s].append((d, lg))
    for i in range(n_incidents):
        # blocked share over time: full for `duration` steps, then a linear recovery
        shape = np.concatenate([np.ones(int(duration[i])), np.linspace(1.0, 0.0, int(recovery[i]) + 2)[1:-1]])
        # the queue spills upstream sensor by sensor, later and weaker at each one
        frontier = [(int(where[i]), int(begin[i]), float(severity[i]))]
        while frontier:
            node, t0, sev = frontier.pop()
            _apply_dip(factor, node, t0, sev, shape)
            sev *= _SHOCK_DECAY
            frontier += [(u, t0 + lg, sev) for u, lg in upstream[node] if sev >= _SHOCK_MIN_SEVERITY]
        # the bottleneck meters what passes, so the next sensor downstream sees a milder dip
        for d, lg in downstream[int(where[i])]:
            _apply_dip(factor, d, int(begin[i]) + lg, float(severity[i]) * _DOWNSTREAM_DIP, shape)
    return factor


def _apply_dip(factor: np.ndarray, node: int, t0: int, severity: float, shape: np.ndarray) -> None:
    """Multiply factor[t0:, node] by (1 - severity * shape), clipped to the series end."""
    stop = min(factor.shape[0], t0 + shape.size)
    if t0 < stop:
        factor[t0:stop, node] *= 1.0 - severity * shape[: stop - t0]


def _missing_mask(t_len: int, n: int, share: float, interval: int, rng: np.random.Generator) -> np.ndarray:
    """(T, N) bool: exactly round(share * T * N) cells, half in sensor outages, the rest single points."""
    mask = np.zeros((t_len, n), dtype=bool)
    target = int(round(share * t_len * n))
    if target == 0:
        return mask
    # outages of one sensor lasting 15 minutes to 2 hours take about half the budget
    lo, hi = max(2, 15 // interval), min(max(2, 120 // interval), t_len)
    lengths = rng.integers(lo, hi + 1, max(1, target // (lo + hi)))
    lengths = lengths[np.cumsum(lengths) <= target // 2]
    if lengths.size:
        begin = rng.integers(0, t_len - lengths + 1)
        sensor = rng.integers(0, n, lengths.size)
        offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        mask[np.repeat(begin, lengths) + offset, np.repeat(sensor, lengths)] = True
    # single dropped readings fill the rest exactly (outages may overlap, so count what is left)
    free = np.flatnonzero(~mask.ravel())
    mask.flat[free[rng.choice(free.size, target - (mask.size - free.size), replace=False)]] = True
    return mask
