"""The dataset's interval, value name and unit flow into every plot label (no 5-minute flow assumed)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from stlib.data import Dataset, chronological_splits, load_dataset  # noqa: E402
from stlib.reporting import plots, runplots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def speed_dataset(interval=15, days=4, n=4) -> Dataset:
    """Speeds every `interval` minutes, named sensors, a small chain graph."""
    T = days * 1440 // interval
    rng = np.random.default_rng(0)
    series = rng.uniform(20, 70, size=(T, n, 1)).astype(np.float32)
    edges = pd.DataFrame({"from": np.arange(n - 1), "to": np.arange(1, n), "cost": np.ones(n - 1)})
    return Dataset(
        "speeds",
        series,
        pd.Timestamp("2024-01-01"),
        interval,
        edges,
        chronological_splits(T, 24),
        sensor_ids=[f"s{i}" for i in range(n)],
        value_name="speed",
        unit="mph",
    )


def test_value_name_and_unit_options_relabel_any_dataset():
    ds = load_dataset("synthetic", num_sensors=5, num_days=2, value_name="occupancy", unit="%")
    assert (ds.value_name, ds.unit, ds.value_label) == ("occupancy", "%", "occupancy (%)")
    default = load_dataset("synthetic", num_sensors=5, num_days=2, interval_minutes=15)
    assert default.value_label == "flow (vehicles/15 min)"
    assert default.summary()["unit"] == "vehicles/15 min"


def test_data_figures_use_value_label():
    ds = speed_dataset()
    assert plots.daily_profile(ds).get_ylabel() == "speed (mph), missing excluded"
    assert plots.value_distribution(ds).get_xlabel() == "speed (mph), non-missing values"
    heat = plots.sensor_heatmap(ds, days=1)
    assert heat.figure.axes[-1].get_ylabel() == "speed (mph)"  # the colour bar
    graph = plots.sensor_graph(ds)
    assert graph.figure.axes[-1].get_ylabel() == "mean speed (mph)"
    table = plots.data_overview(ds)
    assert table.loc["value", "value"] == "speed (mph)" and table.loc["interval", "value"] == "15 min"
    hours = plots.daily_profile_table(ds)["hour"]
    assert hours.max() == pytest.approx(23.75)  # 96 slots of 15 minutes


class FakeRun:
    """What the run plots read from a Run: history, metrics, dataset and predict()."""

    def __init__(self, ds):
        self.dataset = ds
        self.history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_mae": [3.0, 2.0]})
        self.metrics = {"test": {"mae_per_step": list(np.linspace(1, 2, ds.out_steps))}}

    def predict(self, split):
        S = len(self.dataset.splits[split])
        shape = (S, self.dataset.out_steps, self.dataset.num_sensors)
        return np.full(shape, 50.0), np.full(shape, 50.0)


def test_run_figures_use_interval_and_unit():
    ds = speed_dataset(interval=15)
    runs = {("encdec", 0): FakeRun(ds)}
    ax = runplots.error_by_horizon(runs)
    assert ax.get_xlabel() == "horizon (15-minute steps ahead)" and ax.get_ylabel() == "test MAE (mph)"
    curves = runplots.learning_curves(runs)
    assert curves[1].get_title() == "validation MAE (mph)"
    fig = runplots.forecast_vs_truth(runs, ds, sensors=(0, 2), horizon=3)
    title = fig.axes[0].get_title()
    assert title == "3-step-ahead forecast (45 min) vs true speed, test split"
    assert fig.axes[1].get_ylabel() == "sensor s2\nmph"


def test_run_figures_without_unit_say_original_units():
    ds = speed_dataset(interval=5)
    ds.unit = ""
    ax = runplots.error_by_horizon({("m", 0): FakeRun(ds)})
    assert ax.get_xlabel() == "horizon (5-minute steps ahead)" and ax.get_ylabel() == "test MAE (original units)"
    bare = SimpleNamespace(metrics={"test": {"mae_per_step": [1.0, 2.0]}})  # a run without a dataset
    assert runplots.error_by_horizon({("m", 0): bare}).get_xlabel() == "horizon (steps ahead)"
