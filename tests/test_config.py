"""Tests for stlib.config: params files, presets, dotted overrides, types, ranges and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from stlib.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    build_run_config,
    load,
    load_profile,
    model_classes,
    model_options,
    parse_override,
    replace,
)
from stlib.paths import REPO_ROOT

PARAMS = sorted((REPO_ROOT / "params").glob("*.yaml"))
DEFAULT = REPO_ROOT / "params" / "default.yaml"


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# the shipped params files


def test_params_files_exist():
    assert {p.stem for p in PARAMS} >= {"default", "pems08_tail_cpu", "pems08_tail_gpu"}


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_params_file_and_every_preset_validate(path):
    profile = load_profile(path)
    cfg = profile.run_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.profile == profile.name == path.stem
    assert profile.presets, "every profile defines presets"
    for name in profile.presets:
        pcfg = profile.run_config(preset=name)
        assert isinstance(pcfg, RunConfig)
        for key, value in profile.presets[name].items():
            if key == "base":
                continue
            section, field = key.split(".")
            got = getattr(getattr(pcfg, section), field)
            assert got == value or (isinstance(got, float) and got == pytest.approx(float(value))), key
    for stage in profile.notebooks:
        assert len(stage) == 2 and stage.isdigit()


def test_default_profile_values():
    cfg = load(DEFAULT)
    assert cfg.data.name == "synthetic" and cfg.model.name == "encdec"
    assert cfg.model.d_model == 32 and cfg.train.lr == 0.001 and cfg.train.epochs == 10
    # untouched fields keep their dataclass defaults
    assert cfg.train.eval_batch_size == TrainConfig().eval_batch_size


def test_default_profile_trains_every_stage_for_one_budget():
    """make run compares the stages at one training budget: no preset and no notebook changes the epochs."""
    profile = load_profile(DEFAULT)
    epochs = profile.run_config().train.epochs
    for name in profile.presets:
        assert profile.run_config(preset=name).train.epochs == epochs, name
    for stage, params in profile.notebooks.items():
        assert "train.epochs" not in params.get("overrides", {}), stage
        assert params.get("epochs") is None, stage


def test_cpu_profile_stid_preset_turns_amp_off():
    profile = load_profile(REPO_ROOT / "params" / "pems08_tail_cpu.yaml")
    assert profile.run_config().train.amp == "bf16"
    assert profile.run_config(preset="stid").train.amp == "off"


def test_preset_applies_on_top_of_base():
    profile = load_profile(DEFAULT)
    base = profile.run_config()
    stid = profile.run_config(preset="stid")
    assert stid.model.name == "stid" and stid.train.lr == 0.002
    assert stid.train.scheduler == "multistep" and stid.train.milestones == [1, 50, 80]
    assert stid.model.dropout == 0.15
    # base values the preset does not name are kept
    assert stid.data == base.data
    assert stid.train.batch_size == base.train.batch_size and stid.train.weight_decay == base.train.weight_decay
    # the preset did not leak into the base
    assert profile.run_config().model.name == "encdec" and profile.run_config().train.lr == 0.001
    # overrides come after the preset
    cfg = profile.run_config(preset="stid", overrides=["train.lr=0.01"])
    assert cfg.train.lr == 0.01 and cfg.model.name == "stid"


def test_unknown_preset_names_the_closest():
    with pytest.raises(ConfigError, match=r"unknown preset 'sitd'.*did you mean 'stid'"):
        load_profile(DEFAULT).run_config(preset="sitd")


def test_top_level_arguments_override():
    cfg = load_profile(DEFAULT).run_config(stage="00", name="x")
    assert cfg.stage == "00" and cfg.name == "x" and cfg.profile == "default"


# ---------------------------------------------------------------------------------------------
# unknown keys


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "profile: t\ntrian: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*did you mean 'train'") as e:
        load_profile(path)
    assert str(path) in str(e.value)


def test_unknown_key_in_section(tmp_path):
    path = write(tmp_path, "train: {epochs: 1, batch_sise: 8}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'batch_sise'.*did you mean 'batch_size'"):
        load_profile(path)
    path = write(tmp_path, "model: {dropuot: 0.1}\n")
    with pytest.raises(ConfigError, match=r"model.*unknown key 'dropuot'.*did you mean 'dropout'"):
        load_profile(path)


def test_unknown_key_in_preset(tmp_path):
    path = write(tmp_path, "presets:\n  fast: {train.epoch: 1}\n")
    with pytest.raises(ConfigError, match=r"presets\.fast.*unknown key 'train\.epoch'.*did you mean 'train\.epochs'"):
        load_profile(path)


def test_bad_value_in_preset_names_preset_and_field(tmp_path):
    path = write(tmp_path, "presets:\n  fast: {train.lr: -1}\n")
    with pytest.raises(ConfigError, match=r"presets\.fast.*train\.lr must be > 0"):
        load_profile(path)


@pytest.mark.parametrize(
    "override, bad, suggestion",
    [
        ("train.lrr=1", "train.lrr", "train.lr"),
        ("trian.lr=1", "trian.lr", "train.lr"),
        ("model.n_head=2", "model.n_head", "model.n_heads"),
        ("data.num_sensor=10", "data.num_sensor", "data.num_sensors"),
        ("stag=01", "stag", "stage"),
    ],
)
def test_unknown_override_key_suggests_closest(override, bad, suggestion):
    with pytest.raises(ConfigError) as e:
        load_profile(DEFAULT).run_config(overrides=[override])
    msg = str(e.value)
    assert f"unknown key '{bad}'" in msg
    assert f"did you mean '{suggestion}'" in msg


def test_override_key_without_field():
    with pytest.raises(ConfigError, match=r"'train\.lr\.x' must look like section\.field"):
        load_profile(DEFAULT).run_config(overrides=["train.lr.x=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'zzzz'"):
        load_profile(DEFAULT).run_config(overrides=["zzzz=1"])


def test_override_without_equals():
    with pytest.raises(ConfigError, match=r"key=value.*'train\.lr'"):
        parse_override("train.lr")


# ---------------------------------------------------------------------------------------------
# types and ranges


@pytest.mark.parametrize(
    "override, field, words",
    [
        ("train.batch_size=abc", "train.batch_size", "integer"),
        ("train.epochs=1.5", "train.epochs", "integer"),
        ("train.epochs=true", "train.epochs", "integer"),
        ("train.amp=fp8", "train.amp", "one of"),
        ("model.use_denoising=maybe", "model.use_denoising", "true or false"),
        ("train.lr=fast", "train.lr", "number"),
        ("train.lr=nan", "train.lr", "finite"),
        ("train.milestones=5", "train.milestones", "list"),
        ("train.milestones=[1,x]", "train.milestones[1]", "integer"),
        ("model.name=transformer", "model.name", "one of"),
    ],
)
def test_wrong_type_names_the_field(override, field, words):
    with pytest.raises(ConfigError) as e:
        load_profile(DEFAULT).run_config(overrides=[override])
    assert field in str(e.value) and words in str(e.value)


def test_wrong_choice_suggests_closest():
    with pytest.raises(
        ConfigError, match=r"train\.amp must be one of off, bf16, fp16, auto; got 'fp8' \(did you mean 'fp16'"
    ):
        load_profile(DEFAULT).run_config(overrides=["train.amp=fp8"])


def test_wrong_choice_lists_the_choices_once():
    with pytest.raises(ConfigError) as e:
        load_profile(DEFAULT).run_config(overrides=["model.name=foo"])
    msg = str(e.value)
    assert "model.name must be one of last_value, historical_average, stid, encdec, alternating; got 'foo'" in msg
    assert msg.count("encdec") == 1 and "valid:" not in msg


def test_zero_epochs_refused_for_trainable_models():
    for name in ("encdec", "stid", "alternating"):
        with pytest.raises(ConfigError, match=f"train.epochs must be >= 1 for model.name {name}.*got 0"):
            load_profile(DEFAULT).run_config(overrides=[f"model.name={name}", "train.epochs=0"])
    for name in ("last_value", "historical_average"):  # nothing to train: 0 epochs is what they run anyway
        assert load_profile(DEFAULT).run_config(overrides=[f"model.name={name}", "train.epochs=0"]).train.epochs == 0


@pytest.mark.parametrize(
    "override, field, bound",
    [
        ("train.lr=-0.001", "train.lr", "> 0"),
        ("train.lr=0", "train.lr", "> 0"),
        ("train.batch_size=0", "train.batch_size", ">= 1"),
        ("train.accumulation_steps=0", "train.accumulation_steps", ">= 1"),
        ("model.dropout=1.5", "model.dropout", "<= 0.95"),
        ("model.dropout=-0.1", "model.dropout", ">= 0"),
        ("train.gamma=1.5", "train.gamma", "<= 1"),
        ("data.num_sensors=2", "data.num_sensors", ">= 4"),
    ],
)
def test_out_of_range_names_the_field(override, field, bound):
    with pytest.raises(ConfigError) as e:
        load_profile(DEFAULT).run_config(overrides=[override])
    assert f"{field} must be {bound}" in str(e.value)


def test_wrong_type_in_params_file_names_file_and_field(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: abc\n")
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    assert str(path) in str(e.value) and "train.batch_size must be an integer" in str(e.value)
    path = write(tmp_path, "model:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError, match=r"model\.dropout must be <= 0\.95"):
        load_profile(path)


def test_section_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"train must be a mapping"):
        load_profile(write(tmp_path, "train: [1, 2]\n"))


def test_empty_section_and_override_into_it(tmp_path):
    profile = load_profile(write(tmp_path, "train:\nmodel:\n"))
    assert profile.run_config().train == TrainConfig()
    assert profile.run_config(overrides=["train.epochs=3"]).train.epochs == 3


def test_unquoted_off_in_yaml_is_the_choice_off(tmp_path):
    # YAML 1.1 reads `amp: off` as False; for a field whose choices include "off" that means "off"
    cfg = load_profile(write(tmp_path, "train: {amp: off, compile: off}\n")).run_config()
    assert cfg.train.amp == "off" and cfg.train.compile == "off"
    with pytest.raises(ConfigError, match=r"data\.name must be a string, got True.*quote"):
        load_profile(write(tmp_path, "data: {name: yes}\n"))


def test_d_model_must_be_divisible_by_n_heads():
    with pytest.raises(ConfigError, match=r"model\.d_model \(30\) must be divisible by model\.n_heads \(4\)"):
        load_profile(DEFAULT).run_config(overrides=["model.d_model=30"])
    with pytest.raises(ConfigError, match="divisible"):
        build_run_config({"model": {"name": "alternating", "d_model": 10, "n_heads": 3}})
    # models without attention heads do not care
    with pytest.raises(ConfigError, match=r"model\.d_model does not apply to model stid; its options are: embed_dim"):
        build_run_config({"model": {"name": "stid", "d_model": 10, "n_heads": 3}})


# ---------------------------------------------------------------------------------------------
# parse_override


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("train.lr=1e-3", "train.lr", 0.001),  # YAML 1.1 would give the string '1e-3'
        ("train.lr=0.002", "train.lr", 0.002),
        ("train.lr=1", "train.lr", 1.0),
        ("train.epochs=5", "train.epochs", 5),
        ("train.milestones=[1,50]", "train.milestones", [1, 50]),
        ("train.milestones=[]", "train.milestones", []),
        ("data.split=[0.7, 0.1, 2e-1]", "data.split", [0.7, 0.1, 0.2]),
        ("model.use_denoising=false", "model.use_denoising", False),
        ("train.amp=off", "train.amp", "off"),  # not the YAML 1.1 boolean False
        ("stage=01", "stage", "01"),  # not the YAML 1.1 integer 1
        ("data.path=null", "data.path", None),
        ("data.path=my data.csv", "data.path", "my data.csv"),
        (" train.epochs = 7 ", "train.epochs", 7),
    ],
)
def test_parse_override_types(text, key, value):
    k, v = parse_override(text)
    assert k == key
    assert v == value and type(v) is type(value)
    if isinstance(value, list):
        assert [type(x) for x in v] == [type(x) for x in value]


def test_parse_override_keeps_equals_in_value():
    assert parse_override("data.path=a=b.csv") == ("data.path", "a=b.csv")


def test_overrides_as_strings_dict_and_pairs_agree():
    profile = load_profile(DEFAULT)
    a = profile.run_config(overrides=["train.lr=1e-3", "train.milestones=[1,50]", "train.amp=off"])
    b = profile.run_config(overrides={"train.lr": 0.001, "train.milestones": [1, 50], "train.amp": "off"})
    c = profile.run_config(overrides=[("train.lr", "1e-3"), ("train.milestones", (1, 50)), ("train.amp", "off")])
    assert a == b == c
    assert a.train.lr == 0.001 and isinstance(a.train.lr, float) and a.train.milestones == [1, 50]


def test_load_with_overrides_and_preset():
    cfg = load(DEFAULT, overrides=["train.epochs=2"], preset="stid")
    assert cfg.train.epochs == 2 and cfg.model.name == "stid"


# ---------------------------------------------------------------------------------------------
# replace, build_run_config


def test_replace_returns_validated_copy():
    cfg = load(DEFAULT)
    new = replace(cfg, **{"train.lr": 0.01, "model.name": "stid", "stage": "02"})
    assert new.train.lr == 0.01 and new.model.name == "stid" and new.stage == "02"
    assert cfg.train.lr == 0.001 and cfg.model.name == "encdec"  # original untouched
    assert new.data == cfg.data
    assert replace(cfg) == cfg
    with pytest.raises(ConfigError, match=r"train\.batch_size must be >= 1"):
        replace(cfg, **{"train.batch_size": 0})
    with pytest.raises(ConfigError, match=r"unknown key 'train\.lrr'.*did you mean 'train\.lr'"):
        replace(cfg, **{"train.lrr": 0.1})


def test_to_dict_round_trips():
    cfg = load(DEFAULT, preset="stid")
    assert build_run_config(cfg.to_dict()) == cfg


def test_build_run_config_unknown_top_key():
    with pytest.raises(ConfigError, match=r"unknown key 'trains'.*did you mean 'train'"):
        build_run_config({"trains": {}})


def test_every_field_has_a_valid_default():
    # the dataclass defaults must themselves pass validation
    assert build_run_config({}) == RunConfig()
    for cls in (DataConfig, TrainConfig, *model_classes().values()):
        assert cls() == cls.model_validate(cls().model_dump())


# ---------------------------------------------------------------------------------------------
# files


def test_missing_params_file(tmp_path):
    write(tmp_path, "profile: a\n", "other.yaml")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as e:
        load_profile(missing)
    assert "not found" in str(e.value) and str(missing) in str(e.value)
    assert "other.yaml" in str(e.value)  # lists what is there


def test_params_path_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        load_profile(tmp_path)


def test_a_directory_lists_its_own_params_files(tmp_path):
    """--params params used to list the yaml files of the folder above (`files in .: environment.yml`)."""
    folder = tmp_path / "params"
    folder.mkdir()
    write(folder, "profile: a\n", "a.yaml")
    write(folder, "profile: b\n", "b.yaml")
    write(tmp_path, "name: env\n", "environment.yml")
    with pytest.raises(ConfigError) as e:
        load_profile(folder)
    msg = str(e.value)
    assert "a directory was given" in msg and f"YAML files in {folder}: a.yaml, b.yaml" in msg
    assert "environment.yml" not in msg


def test_missing_params_file_in_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(tmp_path / "nowhere" / "p.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "train: {epochs: 1\nmodel: [\n")
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    assert str(path) in str(e.value) and "not valid YAML" in str(e.value)


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_profile(write(tmp_path, "- a\n- b\n"))


def test_empty_file_is_all_defaults(tmp_path):
    profile = load_profile(write(tmp_path, "", "empty.yaml"))
    assert profile.name == "empty"
    cfg = profile.run_config()
    assert cfg.train == TrainConfig() and cfg.model == model_options("encdec") and cfg.data == DataConfig()


def test_presets_and_notebooks_shapes(tmp_path):
    with pytest.raises(ConfigError, match=r"presets\.fast must be a mapping"):
        load_profile(write(tmp_path, "presets:\n  fast: [1]\n"))
    with pytest.raises(ConfigError, match=r"presets must be a mapping"):
        load_profile(write(tmp_path, "presets: [a]\n"))
    with pytest.raises(ConfigError, match=r"notebooks\.01 must be a mapping"):
        load_profile(write(tmp_path, 'notebooks:\n  "01": 3\n'))
    # an unquoted 01 (YAML 1.1: the integer 1) still names stage "01"
    assert set(load_profile(write(tmp_path, "notebooks:\n  01: {seeds: [0]}\n")).notebooks) == {"01"}


# ---------------------------------------------------------------------------------------------
# params compose: presets on base presets, a file on a base file


def test_a_preset_composes_its_base_presets_in_order(tmp_path):
    path = write(
        tmp_path,
        "presets:\n"
        "  fast: {train.lr: 0.01, train.epochs: 3}\n"
        "  long: {train.epochs: 30, train.seed: 2}\n"
        "  both: {base: [fast, long], train.seed: 5}\n"
        "  deeper: {base: both, model.encoder_depth: 2}\n",
    )
    profile = load_profile(path)
    cfg = profile.run_config(preset="deeper")
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.seed, cfg.model.encoder_depth) == (0.01, 30, 5, 2)
    bad = write(tmp_path, "presets:\n  a: {base: b}\n  b: {base: a}\n", "loop.yaml")
    with pytest.raises(ConfigError, match=r"presets\.a is its own base \(a -> b -> a\)"):
        load_profile(bad)
    with pytest.raises(ConfigError, match=r"unknown preset 'fsat'.*did you mean 'fast'"):
        load_profile(write(tmp_path, "presets:\n  fast: {}\n  x: {base: fsat}\n", "typo.yaml"))


def test_a_params_file_on_a_base_file_replaces_sections_and_adds_presets(tmp_path):
    write(
        tmp_path,
        "data: {name: synthetic, num_sensors: 8}\ntrain: {lr: 0.01}\npresets:\n  a: {train.epochs: 2}\n",
        "base.yaml",
    )
    child = write(
        tmp_path, "base: base.yaml\ndata: {name: synthetic, num_days: 5}\npresets:\n  b: {base: a}\n", "child.yaml"
    )
    profile = load_profile(child)
    cfg = profile.run_config(preset="b")
    assert profile.name == "child" and set(profile.presets) == {"a", "b"}
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 2  # the base file's train section and preset
    assert cfg.data.num_days == 5 and cfg.data.num_sensors == DataConfig().num_sensors  # data replaced whole


def test_a_key_written_twice_is_an_error_naming_the_line(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.01\n  epochs: 3\n  lr: 0.02\n")
    with pytest.raises(ConfigError, match=r"p\.yaml, line 4: key 'lr' is written twice"):
        load_profile(path)
    path = write(tmp_path, "train: {lr: 0.01}\nmodel: {}\ntrain: {epochs: 3}\n")  # a whole section twice
    with pytest.raises(ConfigError, match=r"line 3: key 'train' is written twice"):
        load_profile(path)
    path = write(tmp_path, "presets:\n  a: {train.lr: 0.1}\n  a: {train.lr: 0.2}\n")
    with pytest.raises(ConfigError, match=r"line 3: key 'a' is written twice"):
        load_profile(path)
