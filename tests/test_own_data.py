"""params/own_data_example.yaml: pems08_tail_cpu's model and training, a `file` data block that reads the
formats of docs/data.md (files generated here, none shipped)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from stlib.config import load_profile
from stlib.data import from_config
from stlib.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "params" / "own_data_example.yaml"
CPU = REPO_ROOT / "params" / "pems08_tail_cpu.yaml"


def test_only_the_data_block_differs_from_the_cpu_profile():
    mine = yaml.safe_load(EXAMPLE.read_text())
    assert mine["base"] == CPU.name and set(mine) == {"profile", "base", "data", "notebooks"}  # by reference
    profile, cpu = load_profile(EXAMPLE), load_profile(CPU)  # validates the base and every preset
    assert profile.presets == cpu.presets and profile.notebooks == {}
    assert profile.run_config().data.name == "file" and profile.name == "own_data_example"
    for preset in [None, *cpu.presets]:
        a, b = profile.run_config(preset=preset), cpu.run_config(preset=preset)
        assert a.model == b.model and a.train == b.train


def test_the_example_reads_the_readme_formats(tmp_path):
    """A timestamped CSV (sensor ids in the header, an empty cell) and an edge list by sensor id."""
    ids = ["400001", "400017", "400030"]
    stamps = pd.date_range("2017-01-01", periods=300, freq="5min")
    rng = np.random.default_rng(0)
    rows = ["time," + ",".join(ids)]
    for t in stamps:
        rows.append(f"{t:%Y-%m-%d %H:%M}," + ",".join(f"{v:.1f}" for v in rng.uniform(40, 120, len(ids))))
    rows[1] = rows[1].rsplit(",", 1)[0] + ","  # an empty cell: a missing reading
    (tmp_path / "flow.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "edges.csv").write_text("from,to,cost\n400001,400017,0.8\n400017,400030,1.2\n")
    cfg = load_profile(EXAMPLE).run_config(
        overrides=[f"data.path={tmp_path / 'flow.csv'}", f"data.edges={tmp_path / 'edges.csv'}"]
    )
    ds = from_config(cfg.data)
    assert ds.sensor_ids == ids and ds.interval_minutes == 5 and ds.start_time == stamps[0]
    assert ds.edges.values.tolist() == [[0, 1, 0.8], [1, 2, 1.2]]
    assert ds.marked_missing == 1 and ds.series[0, 2, 0] == 0
    assert ds.value_label == "flow (vehicles/5 min)"
    n = 300 - 24 + 1
    assert [len(ds.splits[k]) for k in ("train", "val", "test")] == [
        int(n * 0.7),
        int(n * 0.8) - int(n * 0.7),
        n - int(n * 0.8),
    ]


def test_the_cpu_route_presets_train_unchanged_on_other_data(tmp_path):
    """The chosen stage-1 and stage-2 configurations depend on no dataset: with only the data block changed
    (here a small synthetic graph), each builds, trains an epoch and scores finite metrics."""
    from stlib.train import fit

    profile = load_profile(CPU)
    data = ["data.name=synthetic", "data.num_sensors=6", "data.num_days=3"]
    for preset in (
        "stage1_cpu_start",
        "stage1_cpu",
        "stage2_cpu",
        "stage2_stid",
        "stage2_stid_temporal",
        "stid_converged",
        "stage2_converged",
        "stage2_converged_temporal",
    ):
        full = profile.run_config(preset=preset)
        # one epoch; a preset that trains STID's path alone first gets one such epoch and one of the whole model
        stem = getattr(full.model, "stem_epochs", 0)
        epochs = ["train.epochs=2", "model.stem_epochs=1"] if stem else ["train.epochs=1"]
        cfg = profile.run_config(
            preset=preset, overrides=[*data, *epochs, "train.quiet=true", "train.save_checkpoint=false"]
        )
        assert cfg.model.model_dump(exclude={"stem_epochs"}) == full.model.model_dump(exclude={"stem_epochs"})
        run = fit(cfg, out_root=tmp_path)
        assert np.isfinite(run.metrics["test"]["mae"]) and run.metrics["dataset"] == "synthetic"
