"""Figures a reviewer accepts: dataset, device and unit on every figure, legends off the data, bars from zero,
seed spreads drawn, no-op configurations marked, readable log ticks (issue 18, item 5)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from test_units import speed_dataset  # noqa: E402  (a small speed dataset, 15-minute steps)

from stlib.reporting import figstyle, plots, reportplots, runplots  # noqa: E402

GPU = "Fake GPU 9000"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class FakeRun:
    """What the run plots read from a Run: history, metrics, dataset, predict() and the record's env.json."""

    def __init__(self, ds, folder, shift=0.0):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "env.json").write_text(json.dumps({"device": "cuda", "device_name": GPU}))
        self.dir, self.dataset = folder, ds
        self.history = pd.DataFrame(
            {"epoch": [1, 2, 3], "train_loss": [1.0 + shift, 0.5, 0.4], "val_mae": [3.0 + shift, 2.0 + shift, 1.5]}
        )
        self.metrics = {"test": {"mae_per_step": list(np.linspace(1, 2, ds.out_steps) + shift)}}

    def predict(self, split):
        shape = (len(self.dataset.splits[split]), self.dataset.out_steps, self.dataset.num_sensors)
        return np.full(shape, 50.0), np.full(shape, 50.0)


@pytest.fixture
def runs(tmp_path):
    ds = speed_dataset()
    return {
        ("encdec", 0): FakeRun(ds, tmp_path / "a"),
        ("encdec", 1): FakeRun(ds, tmp_path / "b", shift=0.5),
        ("stid", 0): FakeRun(ds, tmp_path / "c", shift=0.2),
    }


def assert_legend_outside(ax):
    """The axes' legend exists and lies entirely right of the axes: it covers no data."""
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None
    box, frame = legend.get_window_extent(r), ax.get_window_extent(r)
    assert box.x0 >= frame.x1 - 0.5, (box, frame)


def seed_dots(ax) -> pd.DataFrame:
    """The dots drawn on an axes (x = MAE, y = row): what the figure shows of the seeds, however they were drawn."""
    from matplotlib.collections import PathCollection

    xy = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    xy = np.concatenate(xy) if xy else np.zeros((0, 2))
    return pd.DataFrame({"MAE": xy[:, 0], "row": np.rint(xy[:, 1]).astype(int)}).sort_values(["row", "MAE"])


def assert_footer(fig, *words):
    """The footer names each word and sits below everything the axes draw."""
    text = figstyle.footer_text(fig)
    for w in words:
        assert w in text, (w, text)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    note = next(a for a in fig.artists if a.get_gid() == figstyle.FOOTER_GID)
    lowest = min(ax.get_tightbbox(r).y0 for ax in fig.axes)
    assert note.get_window_extent(r).y1 <= lowest + 0.5


# ---- the helpers ------------------------------------------------------------------------------


def test_device_label_in_words():
    assert figstyle.device_label("x86_64") == "CPU (x86_64)"  # how run records name a CPU
    assert figstyle.device_label("NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"
    assert figstyle.device_label(None) == figstyle.device_label(float("nan")) == "not recorded"
    assert figstyle.device_label("cpu").startswith("CPU (") and figstyle.device_label("cpu") != "CPU ()"


def test_footer_names_dataset_interval_device_and_unit():
    text = figstyle.footer(speed_dataset(), "x86_64")
    assert text == "Data: speeds, 15-minute steps  |  Device: CPU (x86_64)  |  Unit: mph"
    assert figstyle.footer("pems08-tail") == "Data: pems08-tail  |  Device: not recorded  |  Unit: not recorded"
    assert "Device" not in figstyle.footer(speed_dataset(), computed=False)


def test_stamp_replaces_its_footer_and_is_kept_by_a_tight_save(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    ax.set_xlabel("x")
    figstyle.stamp(fig, "first")
    figstyle.stamp(fig, "second", GPU, "mph")
    assert [a.get_text() for a in fig.artists if a.get_gid() == figstyle.FOOTER_GID] == [figstyle.footer_text(fig)]
    assert_footer(fig, "second", GPU, "mph")
    fig.savefig(tmp_path / "f.png", bbox_inches="tight")
    r = fig.canvas.get_renderer()
    assert fig.get_tightbbox(r).y0 <= fig.artists[0].get_window_extent(r).y0 / fig.dpi + 1e-6


def test_export_context_reads_the_runs_file_beside_a_history(tmp_path):
    pd.DataFrame({"dataset": ["pems08-tail"] * 2, "device": ["x86_64"] * 2}).to_csv(tmp_path / "s_cpu.csv")
    pd.DataFrame({"epoch": [1]}).to_csv(tmp_path / "s_cpu_history.csv")
    expected = {"dataset": "pems08-tail", "device": "CPU (x86_64)"}
    assert figstyle.export_context(tmp_path / "s_cpu_history.csv") == expected
    assert figstyle.export_context(tmp_path / "missing_history.csv") == {"dataset": None, "device": None}


def test_unit_of_a_dataset_by_name():
    assert figstyle.unit_of("pems08-tail") == "vehicles/5 min" and figstyle.unit_of("METR-LA") == "mph"
    assert figstyle.unit_of("file") is None


# ---- run figures ------------------------------------------------------------------------------


def test_learning_curves_draw_seed_bands_and_name_dataset_device_unit(runs):
    ax = runplots.learning_curves(runs)
    assert_footer(ax[0].figure, "speeds", GPU, "mph")
    assert_legend_outside(ax[1])
    labels = [t.get_text() for t in ax[1].get_legend().get_texts()]
    assert labels == ["encdec (2 seeds)", "stid (1 seed)"]
    assert any(isinstance(c, PolyCollection) for c in ax[1].collections)  # the +-1 sd band over the two seeds


def test_error_by_horizon_draws_sd_error_bars(runs):
    ax = runplots.error_by_horizon(runs, references={"peer": {"mae_h3": 1.2}})
    assert_footer(ax.figure, "speeds", GPU, "mph")
    assert_legend_outside(ax)
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert bars, "no error bars"
    first = np.array(bars[0].get_segments()[0])  # horizon 1 of encdec: values 1.0 and 1.5
    sd = np.std([1.0, 1.5], ddof=1)
    assert sorted(first[:, 1]) == pytest.approx([1.25 - sd, 1.25 + sd])
    assert "mean ± 1 sd over seeds" in ax.get_title()


def test_forecast_vs_truth_legend_beside_the_panels(runs):
    ds = speed_dataset()
    fig = runplots.forecast_vs_truth(runs, ds, sensors=(0, 1), horizon=2)
    assert_legend_outside(fig.axes[0])
    assert_footer(fig, "speeds", GPU, "mph")


def test_phase_bars_start_at_zero_and_name_the_device():
    t = pd.DataFrame(
        {
            "rung": ["naive", "+ AMP"],
            "data_s": [1.0, 1.0],
            "forward_s": [40.0, 20.0],
            "backward_s": [50.0, 25.0],
            "optimizer_s": [1.0, 1.0],
            "validation_s": [8.0, 8.0],
            "s_per_epoch": [100.0, 55.0],
            "speedup": [1.0, 1.82],
        }
    )
    ax = runplots.phase_bars(t, dataset="pems08-tail", device="x86_64")
    assert ax.get_ylim()[0] == 0
    assert_legend_outside(ax)
    assert_footer(ax.figure, "pems08-tail", "CPU (x86_64)", "seconds per epoch")


def summary_table():
    return pd.DataFrame(
        {
            "MAE": [20.195, 19.671, 20.195, 20.12],
            "MAE sd": [0.195, 0.189, 0.195, 0.258],
            "kind": ["start", "extra", "alone", "alone"],
        },
        index=pd.Index(["start", "no denoising", "+ warmup", "+ scheduler"]),
    )


def test_no_effect_is_equality_to_the_last_digit():
    s = summary_table()
    assert runplots.no_effect(s, "start").tolist() == [False, False, True, False]
    s.loc["+ warmup", "MAE"] += 1e-9  # a real, tiny difference is a result
    assert not runplots.no_effect(s, "start").any()
    assert not runplots.no_effect(s, None).any() and not runplots.no_effect(s, "absent").any()


def test_config_bars_start_at_zero_and_mark_a_no_op():
    s = summary_table()
    spread = np.tile([-0.1, 0.0, 0.1], len(s))
    seeds = pd.DataFrame({"config": np.repeat(s.index, 3), "MAE": np.repeat(s["MAE"].to_numpy(), 3) + spread})
    ax = runplots.config_bars(
        s,
        reference="start",
        lines={"peer STID": 14.6},
        seeds=seeds,
        dataset="pems08-tail",
        device="NVIDIA H100 80GB HBM3",
    )
    assert ax.get_xlim()[0] == 0  # no truncated axis
    bars = [p for p in ax.patches if p.get_height() > 0 and p.get_width() > 1]
    assert [b.get_hatch() for b in bars] == [None, None, "///", None]  # only the no-op is hatched
    texts = [t.get_text() for t in ax.texts]
    assert sum(runplots.NO_EFFECT in t for t in texts) == 1
    assert texts[1].startswith("19.671 ± 0.189") and "-0.524 vs start" in texts[1]
    assert_legend_outside(ax)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{runplots.NO_EFFECT} (= start)" in legend and "one seed" in legend and "peer STID" in legend
    assert "vehicles/5 min" in ax.get_xlabel()
    assert_footer(ax.figure, "pems08-tail", "NVIDIA H100 80GB HBM3", "vehicles/5 min")
    dots = seed_dots(ax)  # every seed, on its configuration's row (the first on top)
    expected = seeds.assign(row=seeds["config"].map({c: i for i, c in enumerate(s.index)})).sort_values(["row", "MAE"])
    assert dots["row"].tolist() == expected["row"].tolist()
    np.testing.assert_allclose(dots["MAE"], expected["MAE"])


def test_config_bars_without_a_no_op_marks_nothing():
    s = summary_table().drop("+ warmup")
    ax = runplots.config_bars(s, reference="start")
    assert not any(runplots.NO_EFFECT in t.get_text() for t in ax.texts)
    assert all(p.get_hatch() is None for p in ax.patches)
    assert ax.get_xlim()[0] == 0


def test_config_bars_draw_no_result_for_what_cannot_act():
    from stlib.studies import ablation

    assert runplots.CANNOT_ACT == ablation.CANNOT_ACT
    s = summary_table().drop("+ warmup")
    s["acts"] = [True, True, False]
    s["note"] = ["", "", "cannot act at this budget: scheduler: plateau patience 1 needs 3 validations"]
    seeds = pd.DataFrame({"config": np.repeat(s.index, 2), "MAE": np.repeat(s["MAE"].to_numpy(), 2) + [0, 0.1] * 3})
    ax = runplots.config_bars(s, reference="start", seeds=seeds)
    assert [p.get_width() > 1 for p in ax.patches if p.get_visible()] == [True, True]  # no bar for the third
    texts = [t.get_text() for t in ax.texts]
    assert texts[2] == "cannot act at this budget: scheduler: plateau patience 1 needs 3 validations"
    assert "20.120" not in texts[2]  # no number: not a result
    dots = seed_dots(ax)  # the seeds of the two results, none of the third
    assert dots["row"].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(dots["MAE"], seeds["MAE"].iloc[:4])  # start's two seeds, then no denoising's


def test_budget_curves_sd_band_unit_and_footer():
    hist = pd.DataFrame(
        {
            "name": ["a"] * 6 + ["b"] * 3,
            "seed": [0, 0, 0, 1, 1, 1, 0, 0, 0],
            "epoch": [1, 2, 3] * 3,
            "val_mae": [30, 25, 20, 32, 27, 22, 35, 30, 28.0],
        }
    )
    ax = runplots.budget_curves(hist, dataset="pems08-tail", device="x86_64")
    assert len(ax.get_lines()) == 2 and ax.get_ylabel() == "validation MAE (vehicles/5 min)"
    band = next(c for c in ax.collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    sd = np.std([30, 32], ddof=1)  # the two seeds differ by 2 at every epoch
    assert (ys.max(), ys.min()) == pytest.approx((31 + sd, 21 - sd))  # epoch 1 mean 31 + sd, epoch 3 mean 21 - sd
    assert_legend_outside(ax)
    assert_footer(ax.figure, "pems08-tail", "CPU (x86_64)", "vehicles/5 min")


# ---- report and scale --------------------------------------------------------------------------


def route_table():
    return pd.DataFrame(
        {
            "stage": ["baseline: STID-style", "04 stage 2 (alternating)"],
            "MAE": [18.0, 17.0],
            "MAE sd": [0.1, 0.2],
            "s/epoch": [35.0, 12.8],
            "device": ["CPU (x86_64)", GPU],
        }
    )


def test_route_and_stage_cost_figures():
    ax = reportplots.plot_route(route_table(), peer_mae=14.645, dataset="pems08-tail")
    assert_legend_outside(ax)
    assert_footer(ax.figure, "pems08-tail", "CPU (x86_64)", GPU, "vehicles/5 min")
    assert ax.get_ylabel() == "test MAE (vehicles/5 min)"
    ax = reportplots.plot_stage_cost(route_table(), dataset="pems08-tail")
    assert ax.get_xlim()[0] == 0
    assert [t.get_text() for t in ax.get_yticklabels()][0].endswith(f"({GPU})")  # seconds on two devices: each named
    assert_footer(ax.figure, "pems08-tail", "seconds per epoch")


def test_time_to_accuracy_figure_names_dataset_and_device():
    runs = pd.DataFrame(
        {
            "file": ["f.csv"] * 2,
            "name": ["a", "a"],
            "seed": [0, 1],
            "run_dir": ["r0", "r1"],
            "dataset": ["pems08-tail"] * 2,
            "device": ["x86_64"] * 2,
            "params": [10, 10],
            "seconds_per_epoch": [60.0, 60.0],
            "epochs_run": [2, 2],
            "train_seconds": [120.0, 120.0],
            "val_mae": [20.0, 20.5],
            "test_mae": [19.0, 19.4],
            "mae_h12": [22.0, 22.0],
        }
    )
    hist = pd.DataFrame(
        {
            "file": ["f.csv"] * 4,
            "name": ["a"] * 4,
            "run_dir": ["r0", "r0", "r1", "r1"],
            "epoch": [1, 2, 1, 2],
            "val_mae": [25.0, 20.0, 26.0, 20.5],
            "seconds": [60.0] * 4,
        }
    )
    ax = reportplots.plot_time_to_accuracy(runs, hist, peer_mae=14.645, peer_minutes=7)
    assert ax.get_title() == "Accuracy against training time on pems08-tail"
    assert_legend_outside(ax)
    assert_footer(ax.figure, "pems08-tail", "CPU (x86_64)", "vehicles/5 min")


def test_time_to_accuracy_legend_one_entry_a_configuration_and_shared_names_told_apart():
    def export(file, name, mae):
        runs = pd.DataFrame(
            {
                "file": file,
                "name": name,
                "seed": [0, 1],
                "run_dir": [f"{file}{name}0", f"{file}{name}1"],
                "dataset": "pems08-tail",
                "device": "x86_64",
                "params": 10,
                "seconds_per_epoch": 60.0,
                "epochs_run": 2,
                "train_seconds": 120.0,
                "val_mae": 20.0,
                "test_mae": [mae, mae],
                "mae_h12": 22.0,
            }
        )
        hist = pd.DataFrame(
            {
                "file": file,
                "name": name,
                "run_dir": [f"{file}{name}{s}" for s in (0, 0, 1, 1)],
                "epoch": [1, 2, 1, 2],
                "val_mae": [25.0, 20.0, 26.0, 20.5],
                "seconds": 60.0,
            }
        )
        return runs, hist

    parts = [export("a_cpu.csv", "alt", 14.0), export("b_cpu.csv", "alt", 15.0), export("b_cpu.csv", "stacked", 16.0)]
    runs, hist = (pd.concat([p[k] for p in parts], ignore_index=True) for k in (0, 1))
    ax = reportplots.plot_time_to_accuracy(runs, hist, peer_mae=14.645, peer_minutes=7)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "alt [a_cpu]: test 14.00 (2 seeds)" in labels and "alt [b_cpu]: test 15.00 (2 seeds)" in labels
    assert "stacked: test 16.00 (2 seeds)" in labels  # a name only one file has stays as it is
    assert sum("validation" in s for s in labels) == 1  # one entry for all the validation lines
    assert len(labels) == 6  # 3 configurations, the validation lines, the peer and STAEformer
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]) == 6  # a validation line per run


def test_scale_ticks_at_the_measured_n_and_a_shared_legend():
    t = pd.DataFrame(
        {
            "N": [170, 1000, 4000, 8600],
            "batch": 2,
            "device": "cuda",
            "dtype": "bfloat16",
            "step_s": [0.022, 0.023, 0.040, 0.10],
            "peak_mb": [224.0, 944.0, 3436.0, 7182.0],
        }
    )
    axes = reportplots.plot_scale(t)
    axes[0].figure.canvas.draw()
    for ax in axes:
        assert list(ax.get_xticks()) == [170, 1000, 4000, 8600]
        assert [x.get_text() for x in ax.get_xticklabels()] == ["170", "1,000", "4,000", "8,600"]
        assert len(ax.xaxis.get_minor_locator()()) == 0 and len(ax.yaxis.get_minor_locator()()) == 0
    assert 0.023 not in list(axes[0].get_yticks())  # within a few % of the axis from 0.022: left unlabelled
    assert axes[0].get_legend() is None
    assert_legend_outside(axes[1])
    assert len(axes[1].get_legend().get_texts()) == 4  # both measured series, linear and quadratic
    assert_footer(axes[0].figure, "random inputs (batch 2", "bfloat16", "seconds per training step")
    assert axes[0].get_title() == "Step time grows as N^0.35"


def test_scale_plot_labels_the_fitted_exponents():
    t = pd.DataFrame({"N": [100, 1000], "step_s": [0.1, 1.0], "peak_mb": [10.0, 100.0]})
    axes = reportplots.plot_scale(t)
    assert len(axes) == 2 and "N^1.00" in axes[0].get_legend_handles_labels()[1][0]


# ---- data figures ------------------------------------------------------------------------------


def test_data_figures_name_dataset_and_unit_and_keep_legends_off_the_data():
    ds = speed_dataset(days=14)
    figures = (plots.daily_profile, plots.sensor_heatmap, plots.sensor_graph, plots.value_distribution)
    for name, ax in ((f.__name__, f(ds)) for f in (*figures, plots.correlation_vs_distance)):
        words = ("speeds", "15-minute steps", "mph")
        assert all(w in figstyle.footer_text(ax.figure) for w in words), name
        assert "Device" not in figstyle.footer_text(ax.figure), name  # nothing was computed on a device
        if ax.get_legend() is not None:
            assert_legend_outside(ax)
    assert plots.daily_profile(ds).get_legend() is not None
