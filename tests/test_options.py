"""Explicit interfaces: each model and dataset takes its own options, and an option set for one that does not take
it is a config error naming the option, the model (or dataset) and the options it takes."""

from __future__ import annotations

import ast
import inspect
import sys

import pytest

from stlib import config, data
from stlib.config import DATASET_OPTIONS, ConfigError, load_profile, model_classes, replace
from stlib.data import make_batches, sources
from stlib.models import STID, AlternatingEncoderDecoder, EncoderDecoder, HistoricalAverage, build_model
from stlib.paths import REPO_ROOT

PARAMS = sorted((REPO_ROOT / "params").glob("*.yaml"))
DEFAULT = REPO_ROOT / "params" / "default.yaml"


def write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# each model's options class is its constructor's arguments


def params(fn, skip=()) -> set[str]:
    return {p for p in inspect.signature(fn).parameters if p not in skip and p != "self"}


def options(name) -> set[str]:
    return set(model_classes()[name].model_fields) - {"name"}


def _names_read(cls) -> set[str]:
    """The attribute names and string constants a class's module (and its bases' modules) mention."""
    names = set()
    for c in cls.__mro__:
        if c.__module__.startswith("stlib.models"):
            for node in ast.walk(ast.parse(inspect.getsource(sys.modules[c.__module__]))):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.add(node.value)
    return names


def test_every_model_is_built_from_its_options_and_reads_each_of_them():
    assert list(model_classes())[:5] == ["last_value", "historical_average", "stid", "encdec", "alternating"]
    for model, cls in [(STID, "stid"), (EncoderDecoder, "encdec"), (AlternatingEncoderDecoder, "alternating")]:
        first = next(iter(inspect.signature(model).parameters.values()))
        assert first.annotation in (model_classes()[cls].__name__, model_classes()[cls]), model
    for name, cls in model_classes().items():
        assert options(name) <= _names_read(cls), (name, options(name) - _names_read(cls))  # no option left unread
    assert options("alternating") == options("encdec") | {
        "pattern",
        "adaptive_dim",
        "stid_head",
        "stem_epochs",
        "stem_patience",
    }


def test_dataset_options_are_the_loader_arguments():
    labels = {"value_name", "unit", "train_days", "lags"}  # options any dataset takes
    assert set(DATASET_OPTIONS["synthetic"]) == params(sources.load_synthetic) | labels
    assert set(DATASET_OPTIONS["pems08-tail"]) == params(sources.load_pems08_tail) | labels
    assert set(DATASET_OPTIONS["PEMS"]) == params(sources.load_pems, {"name"}) | labels
    assert set(DATASET_OPTIONS["DCRNN"]) == params(sources.load_dcrnn, {"name"}) | labels
    assert set(DATASET_OPTIONS["file"]) == params(sources.load_file) | labels
    assert set(sources.DCRNN_FILES) == set(config.DCRNN_NAMES)


def test_no_catch_all_arguments():
    for fn in (
        STID,
        HistoricalAverage,
        EncoderDecoder,
        sources.load_synthetic,
        sources.load_pems,
        sources.load_pems08_tail,
        sources.load_dcrnn,
        sources.load_file,
    ):
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, fn


# ---------------------------------------------------------------------------------------------
# an option the chosen model or dataset does not take is an error


@pytest.mark.parametrize(
    "preset, overrides, option, model",
    [
        ("stid", ["model.patch=2"], "model.patch", "stid"),  # an override after the preset chose STID
        (None, ["model.name=stid", "model.d_model=16"], "model.d_model", "stid"),  # set with the choice
        (None, ["model.adaptive_dim=8"], "model.adaptive_dim", "encdec"),  # once silently 0 for encdec
        ("last_value", ["model.by_weekday=false"], "model.by_weekday", "last_value"),
        ("historical_average", ["model.dropout=0.2"], "model.dropout", "historical_average"),
    ],
)
def test_option_the_model_does_not_take_is_an_error(preset, overrides, option, model):
    with pytest.raises(ConfigError) as e:
        load_profile(DEFAULT).run_config(preset=preset, overrides=overrides)
    msg = str(e.value)
    assert f"{option} does not apply to model {model}" in msg
    takes = [f for f in model_classes()[model].model_fields if f != "name"]
    if takes:
        assert "its options are: " + ", ".join(takes) in msg
    else:
        assert "it takes no options" in msg


def test_option_in_a_preset_or_the_params_file_is_an_error(tmp_path):
    bad_preset = write(tmp_path, "model: {name: encdec}\npresets:\n  s: {model.name: stid, model.patch: 2}\n")
    with pytest.raises(ConfigError, match=r"presets\.s: model\.patch does not apply to model stid"):
        load_profile(bad_preset)  # every preset is validated when the file loads
    bad_base = write(tmp_path, "model: {name: stid, n_heads: 2}\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: model\.n_heads does not apply to model stid"):
        load_profile(bad_base)


def test_options_of_the_model_a_preset_replaces_are_not_errors():
    # default.yaml configures the encoder-decoder (patch, head, d_model, ...); its stid preset switches the model:
    # the file's encoder-decoder options are unused by STID, not wrong
    cfg = load_profile(DEFAULT).run_config(preset="stid")
    assert cfg.model.name == "stid" and not hasattr(cfg.model, "patch")
    # an option both models take carries over: the file's dropout, unless the preset sets its own
    assert (
        cfg.model.dropout == 0.15
        and load_profile(DEFAULT).run_config(overrides=["model.name=stid"]).model.dropout == 0.05
    )


def test_replace_checks_the_options_it_sets():
    stid = load_profile(DEFAULT).run_config(preset="stid")
    with pytest.raises(ConfigError, match="model.attn_short does not apply to model stid"):
        replace(stid, **{"model.attn_short": 32})
    assert replace(stid, **{"model.name": "encdec", "model.attn_short": 32}).model.attn_short == 32


def test_option_the_dataset_does_not_take_is_an_error(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"data\.num_sensors does not apply to dataset pems08-tail; its options "
        r"are: in_steps, out_steps, value_name, unit",
    ):
        load_profile(DEFAULT).run_config(overrides=["data.name=pems08-tail", "data.num_sensors=5"])
    with pytest.raises(ConfigError, match=r"data\.path does not apply to dataset synthetic"):
        load_profile(DEFAULT).run_config(overrides=["data.path=x.csv"])
    # the params file's synthetic options are not the PEMS08 file's, and not an error when an override switches
    assert load_profile(DEFAULT).run_config(overrides=["data.name=PEMS08"]).data.num_sensors == 24
    with pytest.raises(ValueError, match="data.num_days does not apply to dataset PEMS08"):
        data.load_dataset("PEMS08", num_days=3)


def test_data_info_command_rejects_an_option_the_dataset_does_not_take(capsys):
    from stlib.data.__main__ import main

    assert main(["info", "pems08-tail", "--opt", "num_sensors=5"]) == 2
    assert "data.num_sensors does not apply to dataset pems08-tail" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# every shipped configuration still builds


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_every_preset_builds_its_model(path, tiny):
    profile = load_profile(path)
    for preset in [None, *profile.presets]:
        cfg = profile.run_config(preset=preset)
        model = build_model(cfg.model, tiny)
        assert (
            type(model).__name__
            == {
                "last_value": "LastValue",
                "historical_average": "HistoricalAverage",
                "stid": "STID",
                "encdec": "EncoderDecoder",
                "alternating": "AlternatingEncoderDecoder",
            }[cfg.model.name]
        ), preset
        x, _ = next(iter(make_batches(tiny, "val", 4)))
        assert model.eval()(x).shape == (4, tiny.out_steps, tiny.num_sensors, 1), preset


# ---------------------------------------------------------------------------------------------
# a model defined outside stlib: one class with its options, registered in one line, trained from a params file

# the complete example of docs/ARCHITECTURE.md ("A model"), as written there
PLUGIN = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text().split("# my_models/repeat_last.py\n")[1].split("```")[0]


def test_a_model_from_outside_stlib_registers_and_trains_from_a_params_file(tmp_path, monkeypatch, request):
    from stlib.train import fit

    (tmp_path / "repeat_last.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import repeat_last  # noqa: F401  (registering is importing)

    request.addfinalizer(lambda: config.MODELS.pop("repeat_last"))

    path = write(
        tmp_path,
        "data: {name: synthetic, num_sensors: 4, num_days: 2}\nmodel: {name: repeat_last, hidden: 3}\n"
        "train: {epochs: 1, quiet: true, save_checkpoint: false}\n",
    )
    cfg = load_profile(path).run_config()
    assert type(cfg.model).__name__ == "RepeatLastOptions" and cfg.model.hidden == 3
    with pytest.raises(ConfigError, match="model.d_model does not apply to model repeat_last; its options are: hidden"):
        load_profile(path).run_config(overrides=["model.d_model=8"])
    with pytest.raises(ConfigError, match="model.hidden must be >= 1"):
        load_profile(path).run_config(overrides=["model.hidden=0"])
    run = fit(cfg, out_root=tmp_path / "out")
    assert len(run.history) == 1 and run.model.mix[0].out_features == 3  # built from its options
