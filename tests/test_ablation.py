"""Ablation runner: configs x seeds -> tidy table, resume from records, roadmap constants, gate."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from stlib.config import load_profile
from stlib.reporting import results
from stlib.studies import ablation
from stlib.studies.ablation import Variant

PROFILE = {
    "profile": "abl",
    "stage": "test",
    "data": {"name": "synthetic", "num_sensors": 6, "num_days": 3},
    "model": {
        "name": "encdec",
        "d_model": 16,
        "n_heads": 2,
        "encoder_depth": 1,
        "decoder_depth": 1,
        "dropout": 0.0,
        "use_denoising": False,
    },
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "quiet": True},
    "presets": {"stid": {"model.name": "stid"}},
    "notebooks": {"03": {"seeds": [0, 1]}},
}


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return load_profile(path)


def test_run_ablation_tidy_table_and_resume(profile, tiny, capsys):
    variants = [Variant("start"), Variant("+noise", {"train.noise_std": 0.5})]
    runs, table = ablation.run_ablation(profile, variants, seeds=[0, 1], stage="03", dataset=tiny)
    assert len(runs) == 4 and len(table) == 4
    assert list(table.columns[:4]) == ["config", "kind", "seed", "MAE"]
    assert set(table["config"]) == {"start", "+noise"} and set(table["seed"]) == {0, 1}
    assert table[["MAE", "MAE h12", "RMSE", "MAPE %", "seconds"]].notna().all().all()
    # seeds differ, and the noise variant trains differently from the start
    assert table.loc[table.config == "start", "MAE"].nunique() == 2
    assert not table.loc[table.config == "start", "MAE"].equals(table.loc[table.config == "+noise", "MAE"])
    assert "training 4" in capsys.readouterr().out
    # a rerun reads every record back: same numbers, nothing trained
    runs2, table2 = ablation.run_ablation(profile, variants, seeds=[0, 1], stage="03", dataset=tiny)
    assert "4 of 4 runs already recorded; training 0" in capsys.readouterr().out
    pd.testing.assert_frame_equal(table, table2)
    # one more seed trains only the missing runs
    ablation.run_ablation(profile, variants, seeds=[0, 1, 2], stage="03", dataset=tiny)
    assert "4 of 6 runs already recorded; training 2" in capsys.readouterr().out


@pytest.mark.slow  # spawns worker processes
def test_run_ablation_in_worker_processes(profile, tiny, capsys):
    variants = [Variant("start"), Variant("+warm", {"train.warmup_steps": 3})]
    runs, table = ablation.run_ablation(profile, variants, seeds=[0], stage="03", dataset=tiny, jobs=2)
    serial, table1 = ablation.run_ablation(profile, variants, seeds=[0], stage="03", dataset=tiny, reuse=False)
    # worker processes (one thread each) give the same metrics as training here
    assert table["MAE"].round(4).tolist() == table1["MAE"].round(4).tolist()


def test_duplicate_variant_names_rejected(profile):
    with pytest.raises(ValueError, match="unique"):
        ablation.run_ablation(profile, [Variant("a"), Variant("a")], seeds=[0], stage="03")


def test_summarize_gain_spread_and_clear():
    table = pd.DataFrame(
        {
            "config": ["start"] * 3 + ["better"] * 3 + ["same"] * 3,
            "kind": ["start"] * 3 + ["alone"] * 6,
            "seed": [0, 1, 2] * 3,
            "MAE": [20.0, 20.2, 19.8, 18.0, 18.1, 17.9, 20.1, 19.7, 20.3],
            "MAE h12": [1.0] * 9,
            "RMSE": [1.0] * 9,
            "MAPE %": [1.0] * 9,
            "best epoch": [1] * 9,
            "seconds": [1.0] * 9,
        }
    )
    s = ablation.summarize(
        table, [Variant("start", kind="start"), Variant("better", expected=(0.5, 1.0)), Variant("same")]
    )
    assert s.loc["better", "gain"] == pytest.approx(2.0)
    assert s.loc["start", "gain"] == 0.0 and not s.loc["start", "clear"]
    assert s.loc["better", "gain sd"] == pytest.approx(math.sqrt(0.04 / 3 + 0.01 / 3))
    assert bool(s.loc["better", "clear"]) and not bool(s.loc["same", "clear"])
    assert s.loc["better", "expected gain"] == "0.5-1.0" and s.loc["same", "expected gain"] == ""
    assert s.loc["better", "seeds"] == 3


def test_scaled_constants_keep_the_roadmap_shares(profile):
    cfg = profile.run_config(overrides={"train.epochs": 10, "train.batch_size": 16, "train.validate_every": 1})
    sc = ablation.scaled_constants(cfg, train_windows=2834)
    # 1000 of 168 x 100 roadmap steps = 5.95 %; ours: 178 steps x 10 epochs
    assert sc["roadmap_steps"] == 16800 and sc["our_steps"] == 1780
    assert sc["overrides"]["train.warmup_steps"] == round(1000 / 16800 * 1780)
    assert sc["overrides"]["train.patience"] == 1  # 10 % of 10 validations
    longer = profile.run_config(overrides={"train.epochs": 100, "train.batch_size": 64})
    same = ablation.scaled_constants(longer, train_windows=10700)
    assert same["overrides"] == {"train.warmup_steps": 1000, "train.patience": 10}  # the roadmap's own run
    fewer_vals = profile.run_config(overrides={"train.epochs": 100, "train.validate_every": 5})
    assert ablation.scaled_constants(fewer_vals, 2834)["overrides"]["train.patience"] == 2


def test_stage1_variants_cover_the_roadmap(profile):
    sc = {"overrides": {"train.warmup_steps": 50, "train.patience": 2}}
    vs = {v.name: v for v in ablation.stage1_variants(sc, depth=(2, 3))}
    assert list(vs) == [
        "start",
        "+scheduler",
        "+depth",
        "+noise",
        "+warmup",
        "+scheduler+depth",
        "+scheduler+depth+noise",
        "+scheduler+depth+noise+warmup",
        "no denoising",
        "learned positions",
        "dropout 0.1",
    ]
    tuned = vs["+scheduler+depth+noise+warmup"].overrides
    assert tuned["train.scheduler"] == "plateau" and tuned["train.patience"] == 2 and tuned["train.factor"] == 0.5
    assert tuned["model.encoder_depth"] == 3 and tuned["train.noise_std"] == 0.01
    assert tuned["train.warmup_steps"] == 50
    assert vs["+scheduler+depth+noise+warmup"].expected == pytest.approx((1.5, 2.9))
    assert vs["+depth"].overrides == {"model.encoder_depth": 3, "model.dropout": 0.05}
    assert vs["no denoising"].overrides["model.use_denoising"] is False
    for v in vs.values():  # every variant is a valid config
        profile.run_config(overrides=v.overrides)


def test_select_names_unknown_variant():
    vs = ablation.stage1_variants({"overrides": {"train.warmup_steps": 1, "train.patience": 1}})
    assert [v.name for v in ablation.select(vs, ["start", "+noise"])] == ["start", "+noise"]
    assert ablation.select(vs, []) == vs
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['\+nois'\]"):
        ablation.select(vs, ["+nois"])


def test_gate_is_relative_to_the_baseline():
    g = ablation.gate(15.5, 14.4)
    assert g["ratio"] == pytest.approx(16 / 14.57)
    assert g["threshold"] == pytest.approx(14.4 * 16 / 14.57) and g["passed"] is True
    assert ablation.gate(16.0, 14.4)["passed"] is False


def test_write_params_round_trips(profile, tmp_path):
    path = ablation.write_params(
        profile, {"model.encoder_depth": 3, "train.noise_std": 0.01}, tmp_path / "abl_stage1.yaml", note="chosen"
    )
    again = load_profile(path)
    cfg = again.run_config()
    assert cfg.model.encoder_depth == 3 and cfg.train.noise_std == 0.01
    # a file derived from profile abl stays profile abl (ledger, outputs/abl/), whatever its name
    assert cfg.profile == again.name == "abl"
    assert again.presets == profile.presets and again.notebooks["03"] == {"seeds": [0, 1]}
    assert path.read_text().startswith("# chosen")
    with pytest.raises(Exception, match="encoder_dept"):
        ablation.write_params(profile, {"model.encoder_dept": 3}, tmp_path / "bad.yaml", note="x")
    assert not (tmp_path / "bad.yaml").exists()


def test_runs_of_a_derived_params_file_are_recorded_under_the_profile(profile, tiny, tmp_path):
    """Notebook 03 writes outputs/<profile>/stage1.yaml; notebook 04's runs were listed as profile 'stage1'."""
    path = ablation.write_params(profile, {"train.epochs": 1}, tmp_path / "stage1.yaml", note="chosen")
    ablation.run_ablation(load_profile(path), [Variant("start")], seeds=[0], stage="04", dataset=tiny)
    ledger = results.ledger()
    assert ledger["profile"].tolist() == ["abl"] and ledger["stage"].tolist() == ["04"]


def test_a_record_from_before_a_new_config_field_still_matches():
    from stlib.config import RunConfig
    from stlib.studies.experiments import same_run

    now = RunConfig().to_dict()
    old = RunConfig().to_dict()
    del old["train"]["time_budget_s"]  # written before the field existed: it ran with the default
    assert same_run(old, now)
    changed = RunConfig().to_dict()
    changed["train"]["time_budget_s"] = 60.0
    assert not same_run(old, changed)
    old["train"]["retired_knob"] = 1  # a key the schema no longer knows: never the same experiment
    assert not same_run(old, now)


def test_stage2_variants_one_component_at_a_time():
    vs = ablation.stage2_variants(encoder_depth=4, adaptive_dim=16)
    assert vs[0].name == ablation.STAGE2_START and vs[0].overrides["model.name"] == "encdec"
    assert all(v.overrides["model.encoder_depth"] == 4 for v in vs)
    by = {v.name: v.overrides for v in vs}
    assert by["+ spatial attention (stacked T..S..)"]["model.pattern"] == "stacked"
    assert by["+ alternation (T S T S)"]["model.pattern"] == "alternating"
    assert by["+ adaptive embedding"]["model.adaptive_dim"] == 16
    assert "model.encoder_depth" not in ablation.stage2_variants(None)[1].overrides


def test_ablation_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STLIB_OUTPUT_DIR", str(tmp_path / "outputs"))
    args = [
        "--params",
        "params/default.yaml",
        "--study",
        "stage2",
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--encoder-depth",
        "3",
        "--adaptive-dim",
        "4",
        "--variants",
        ablation.STAGE2_START,
        "+ adaptive embedding",
        "--set",
        "model.d_model=8",
        "--set",
        "model.n_heads=2",
        "--set",
        "data.num_days=3",
        "--set",
        "train.epochs=1",
        "--set",
        "train.quiet=true",
        "--out",
        str(tmp_path / "res"),
    ]
    assert ablation.main(args) == 0
    runs = pd.read_csv(tmp_path / "res" / "stage2_runs.csv")
    assert runs["config"].tolist() == [ablation.STAGE2_START, "+ adaptive embedding"]
    summary = pd.read_csv(tmp_path / "res" / "stage2_summary.csv", index_col=0)
    assert summary.loc["+ adaptive embedding", "gain"] == pytest.approx(
        summary.loc[ablation.STAGE2_START, "MAE"] - summary.loc["+ adaptive embedding", "MAE"]
    )
    # bad input: a clear error naming the key, nothing written
    assert ablation.main([*args[:-2], "--set", "train.epoch=1", "--out", str(tmp_path / "bad")]) == 2
    assert "train.epoch" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert ablation.main([*args[:-2], "--variants", "nope", "--out", str(tmp_path / "bad")]) == 2


def test_gpu_session_script_parses_and_its_stage_configs_validate():
    import re
    import shlex
    import subprocess

    from stlib.config import load_profile, parse_override
    from stlib.paths import REPO_ROOT

    script = REPO_ROOT / "scripts" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    profile = load_profile(REPO_ROOT / "params" / "pems08_tail_gpu.yaml")

    # the GPU's stage-2 settings (the second S2SET: the first is the smoke-test one)
    s2set = re.findall(r"S2SET=\((.*?)\)\n", text, re.S)[1]
    assert "model.d_model=64" in s2set

    def parsed(study):
        block = re.search(rf'{study.upper()}=\(--params "\$PARAMS"(.*?)\)\n', text, re.S).group(1)
        args = shlex.split(block.replace('"${STAGE1_EPOCHS:-8}"', "8").replace('"${S2SET[@]}"', s2set))
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        names = args[args.index("--variants") + 1 : args.index("--set")] if "--variants" in args else []
        return dict(parse_override(o) for o in sets + ["train.time_budget_s=100"]), names

    base, names = parsed("stage2")
    variants = ablation.select(ablation.stage2_variants(6, 80), names)
    assert len(variants) == 4
    for v in variants:  # every configuration the GPU would train validates here first
        cfg = profile.run_config(overrides={**base, **v.overrides}, stage="04")
        assert cfg.train.time_budget_s == 100 and cfg.train.scheduler == "cosine"
    # the best phase: the adaptive-embedding configuration, compiled, with the attention path the attn phase picked
    base, _ = parsed("best")
    (best,) = ablation.select(ablation.stage2_variants(6, 80), ["+ adaptive embedding"])
    assert '--variants "+ adaptive embedding" --set model.attn_short="$short"' in text
    cfg = profile.run_config(
        overrides={**base, **best.overrides, "model.attn_short": 32, "train.compile": "default"}, stage="04"
    )
    assert cfg.model.name == "alternating" and cfg.model.adaptive_dim == 80 and cfg.model.encoder_depth == 6
    assert cfg.train.drop_last  # no recompile for the partial last batch
    # the CPU route's output design (time patches, linear head), as BEST_SET would ask for it, validates too
    cfg = profile.run_config(overrides={**base, **best.overrides, "model.head": "linear", "model.patch": 6}, stage="04")
    assert cfg.model.head == "linear" and cfg.model.patch == 6
    base, names = parsed("stage1")
    cfg = profile.run_config(overrides=base)
    variants = ablation.select(ablation.stage1_variants(ablation.scaled_constants(cfg, 2834), (4, 6)), names)
    assert len(variants) == 7 and cfg.train.epochs == 8
    for v in variants:
        assert profile.run_config(overrides={**base, **v.overrides}, stage="03").train.scheduler in ("none", "plateau")


@pytest.mark.parametrize("best_set", ["", "model.head=linear model.patch=3"])
def test_gpu_session_best_set_overrides_the_best_phase(tmp_path, best_set):
    """BEST_SET's key=value pairs reach the best phase's command as --set, after every default (so they win)."""
    import os
    import subprocess

    from stlib.paths import REPO_ROOT

    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fakepy"  # stands in for python: records its arguments
    fake.write_text(f'#!/bin/bash\necho "$@" >> "{calls}"\n')
    fake.chmod(0o755)
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": str(fake),
        "PHASES": "best",
        "SMOKE": "1",
        "BEST_SET": best_set,
        "STLIB_OUTPUT_DIR": str(tmp_path / "records"),
    }
    (tmp_path / "records").mkdir()
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "gpu_session.sh")],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    (best,) = [c for c in calls.read_text().splitlines() if "--study stage2" in c]
    tail = best.split("train.time_budget_s=")[1]
    expected = "".join(f" --set {kv}" for kv in best_set.split())
    assert tail.split(" ", 1)[1] == f"{expected.strip()} --stage 04 --out {tmp_path / 'out'}/best".strip()


# ---- can an item act at this budget; which configuration stage 2 starts from ---------------------------------


def test_plateau_can_act_needs_patience_plus_two_validations_before_the_last_epoch():
    assert ablation.validation_epochs(5) == [1, 2, 3, 4, 5]
    assert ablation.validation_epochs(7, 3) == [3, 6, 7]
    # patience 1: the earliest cut follows validation 3, and must leave an epoch to train at the lower rate
    assert not ablation.plateau_can_act(2, 1, 1) and not ablation.plateau_can_act(3, 1, 1)
    assert ablation.plateau_can_act(4, 1, 1)
    assert not ablation.plateau_can_act(10, 1, 10) and ablation.plateau_can_act(13, 1, 10)
    assert not ablation.plateau_can_act(9, 3, 1) and ablation.plateau_can_act(10, 3, 1)  # validations 3, 6, 9, 10


def _stage1(profile, epochs, names=None):
    cfg = profile.run_config(overrides={"train.epochs": epochs})
    sc = ablation.scaled_constants(cfg, train_windows=640)
    vs = ablation.stage1_variants(sc, depth=(1, 2))
    return ablation.select(vs, names or [])


def test_budget_check_flags_what_cannot_act(profile):
    names = ["start", "+scheduler", "+depth", "+noise", "+warmup", "+scheduler+depth"]
    check = ablation.budget_check(
        profile, _stage1(profile, 2, names), train_windows=640, base_overrides={"train.epochs": 2}
    )
    assert check["acts"].to_dict() == {
        "start": True,
        "+scheduler": False,
        "+depth": True,
        "+noise": True,
        "+warmup": True,
        "+scheduler+depth": True,
    }
    assert check.loc["+scheduler", "note"].startswith(ablation.CANNOT_ACT)
    assert "patience 1 needs 3 validations" in check.loc["+scheduler", "note"]
    assert "the run has 2 in 2 epochs" in check.loc["+scheduler", "note"]
    # a combination acts through its other items, and says which one cannot
    assert check.loc["+scheduler+depth", "note"].startswith("scheduler cannot act")
    assert check.loc["+depth", "note"] == "" and check.loc["start", "note"] == ""
    # at 10 epochs the same scheduler can act
    check = ablation.budget_check(
        profile, _stage1(profile, 10, names), train_windows=640, base_overrides={"train.epochs": 10}
    )
    assert check["acts"].all() and (check["note"] == "").all()


def test_budget_check_warmup_longer_than_the_run_noise_zero_and_no_change(profile):
    vs = [
        Variant("start", {}, "start"),
        Variant("+warmup", {"train.warmup_steps": 50}),
        Variant("+noise", {"train.noise_std": 0.0}),
        Variant("+patience", {"train.patience": 3}),
        Variant("+warmup 5", {"train.warmup_steps": 5}),
    ]
    check = ablation.budget_check(profile, vs, train_windows=640)  # 10 batches an epoch, 2 epochs: 20 updates
    assert (
        not check.loc["+warmup", "acts"]
        and "warmup 50 steps spans the whole run (20 updates)" in check.loc["+warmup", "note"]
    )
    assert not check.loc["+noise", "acts"] and "the same configuration as start" in check.loc["+noise", "note"]
    assert not check.loc["+patience", "acts"] and "no scheduler is on" in check.loc["+patience", "note"]
    assert check.loc["+warmup 5", "acts"]


def _table(maes: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = [
        {"config": name, "kind": "start" if name == "start" else "alone", "seed": s, "MAE": m, "epochs": 10}
        for name, ms in maes.items()
        for s, m in zip(seeds, ms)
    ]
    return pd.DataFrame(rows)


def test_summarize_marks_what_cannot_act_never_clear():
    table = _table(
        {
            "start": [20.0, 20.2, 19.8],
            "+scheduler": [20.0, 20.2, 19.8],
            "+noise": [18.0, 18.1, 17.9],
            "+warmup": [17.0, 17.1, 16.9],
        }
    )
    check = pd.DataFrame(
        {"acts": [True, True, True, False], "note": ["", "", "", "cannot act at this budget: x"]},
        index=pd.Index(["start", "+scheduler", "+noise", "+warmup"], name="config"),
    )
    s = ablation.summarize(table, check=check)
    assert s["acts"].tolist() == [True, False, True, False]
    # identical on every seed: the change never reached the tested model, said plainly as a budget fact
    assert s.loc["+scheduler", "note"] == (
        "cannot act at this budget: the same test MAE as start on every seed, it trained start again"
    )
    assert "no effect" not in " ".join(s["note"])
    assert s.loc["+warmup", "note"] == "cannot act at this budget: x"
    assert s["clear"].tolist() == [False, False, True, False]  # +warmup's lower MAE is not a result
    assert s.loc["start", "epochs"] == 10


def test_choose_keeps_the_start_unless_a_gain_beats_the_spread():
    within = ablation.summarize(_table({"start": [20.0, 20.4, 19.6], "+depth": [19.8, 20.2, 19.4]}))
    pick = ablation.choose(within)
    assert pick.name == "start"  # the lower mean, 19.8 against 20.0, is within the spread 0.8
    assert "no configuration's gain beats the seed spread" in pick.why and "'+depth'" in pick.why
    clear = ablation.summarize(
        _table(
            {
                "start": [20.0, 20.2, 19.8],
                "+depth": [18.0, 18.1, 17.9],
                "+noise": [17.0, 17.1, 16.9],
                "+warmup": [16.0, 16.0, 16.0],
            }
        ),
        check=pd.DataFrame({"acts": [False], "note": ["cannot act at this budget: w"]}, index=["+warmup"]),
    )
    pick = ablation.choose(clear)
    assert pick.name == "+noise"  # the best of the clear ones; +warmup is lower but cannot act
    assert "beats the seed spread" in pick.why and "2 configurations" in pick.why and "+warmup" in pick.why
    marked = ablation.mark_choice(clear, pick)
    assert marked["chosen"].tolist() == [False, False, True, False]
    assert marked.loc["+noise", "why chosen"] == pick.why and marked.loc["start", "why chosen"] == ""
    one_seed = ablation.summarize(_table({"start": [20.0], "+depth": [15.0]}, seeds=(0,)))
    assert ablation.choose(one_seed).name == "start" and "one seed" in ablation.choose(one_seed).why
    with pytest.raises(ValueError, match="no 'start'"):
        ablation.choose(one_seed.drop(index="start"))
