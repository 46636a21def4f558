"""The run's schema, validated by pydantic: RunConfig = data (DataConfig), model (the options class of the model
`name` picks, registered beside the model) and train (TrainConfig). stlib/params.py reads params files into it.

Every key is checked: an unknown key is an error naming where it was set, the key and the closest valid name; a
wrong type or an out-of-range value names the field and what it must be; an option the chosen model does not
take comes from that model's own schema.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A params file or override that does not validate."""


def _off(v):  # YAML 1.1 reads an unquoted `off` as False: for a choice that includes "off" it means "off"
    return "off" if v is False else v


class Section(BaseModel):
    """A config section: unknown keys refused, numbers as strings accepted where YAML 1.1 reads them so."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _bool_is_no_number(cls, v, info):
        tp = cls.model_fields[info.field_name].annotation
        if isinstance(v, bool) and tp in (int, float):  # pydantic would read true as 1
            raise PydanticCustomError(f"{tp.__name__}_type", "not a number")
        return v


# ---------------------------------------------------------------------------------------------
# data: one flat section; each kind of dataset takes some of its options (DATASET_OPTIONS)

PEMS_NAMES = ("PEMS03", "PEMS04", "PEMS07", "PEMS08")
DCRNN_NAMES = ("METR-LA", "PEMS-BAY")
_WINDOWS, LABEL_OPTIONS = ("in_steps", "out_steps"), ("value_name", "unit")
_FILES = ("split", "missing_value")
DATASET_OPTIONS = {
    "synthetic": (*_WINDOWS, "num_sensors", "num_days", "seed", "interval_minutes", "start_time", "split"),
    "pems08-tail": _WINDOWS,
    "PEMS": (*_WINDOWS, *_FILES),  # PEMS03/04/07/08
    "DCRNN": (*_WINDOWS, *_FILES),  # METR-LA, PEMS-BAY
    "file": (*_WINDOWS, "path", "edges", "edges_by", "interval_minutes", "start_time", *_FILES),
}
# any dataset: labels, the training span (the last train_days days of its training part), context lags
DATASET_OPTIONS = {k: (*v, *LABEL_OPTIONS, "train_days", "lags") for k, v in DATASET_OPTIONS.items()}


def dataset_kind(name: str) -> str | None:
    """The DATASET_OPTIONS key of a data.name ('PEMS08' -> 'PEMS'), None for a name no loader knows."""
    if name in ("synthetic", "pems08-tail", "file"):
        return name
    return "PEMS" if name.upper() in PEMS_NAMES else "DCRNN" if name.upper() in DCRNN_NAMES else None


class DataConfig(Section):
    name: str = "synthetic"  # synthetic | pems08-tail | PEMS03/04/07/08 | METR-LA | PEMS-BAY | file
    in_steps: int = Field(12, ge=1)
    out_steps: int = Field(12, ge=1)
    num_sensors: int = Field(48, ge=4)  # synthetic generator
    num_days: int = Field(21, ge=2)
    seed: int = Field(0, ge=0)
    # "file": .csv (rows = time, columns = sensor ids, optional time column), .npz/.npy (T, N[, C]) or .h5
    path: str | None = None
    edges: str | None = None  # edge list CSV from,to[,cost], dense N x N matrix (.csv/.npy/.npz) or adj_mx.pkl
    edges_by: Literal["auto", "id", "position"] = "auto"  # an edge list names sensors by id, by position, or auto
    interval_minutes: int = Field(5, ge=1)  # for files without timestamps (a time column sets it)
    start_time: str | None = None
    split: list[float] = [0.6, 0.2, 0.2]
    missing_value: float | None = None  # a value marking a missing reading (stored as 0, masked)
    value_name: str | None = None  # what the target measures (default: the dataset's own: flow, speed, value)
    unit: str | None = None  # its unit (default: the dataset's own)
    train_days: float | None = Field(None, gt=0)  # train on the last this many days of the training part only
    lags: list[int] = []  # more input: each window's own rows this many steps back (2016 = a week at 5 minutes)


def check_applies(section: str, name: str, options, where: str) -> None:
    """Each of `options` must be one the dataset `name` takes (a name no loader knows is left to the loader)."""
    kind = dataset_kind(name) if isinstance(name, str) else None
    for option in options if kind else ():
        if option != "name" and option in DataConfig.model_fields and option not in DATASET_OPTIONS[kind]:
            raise ConfigError(
                f"{where}: data.{option} does not apply to dataset {name}; "
                f"its options are: {', '.join(DATASET_OPTIONS[kind])}"
            )


# ---------------------------------------------------------------------------------------------
# models: each model module declares its options class (a ModelOptions with `name` a Literal) and registers it

MODELS: dict[str, type[ModelOptions]] = {}


class ModelOptions(Section):
    """A model's options; `build(ds)` makes the nn.Module mapping (B, in, N, 3) to (B, out, N, 1)."""

    name: str
    trains: ClassVar[bool] = True  # False: nothing to train (last value, historical average)

    def build(self, ds):
        raise NotImplementedError

    def check(self, cfg: RunConfig) -> None:
        """Rules between this model's options and the rest of the run (e.g. the data's input steps)."""


def register(cls: type[ModelOptions]) -> type[ModelOptions]:
    """Class decorator: make a ModelOptions subclass the model its `name` says (`model.name: <name>`)."""
    MODELS[cls.model_fields["name"].default] = cls
    return cls


def model_classes() -> dict[str, type[ModelOptions]]:
    """Every registered model by name (the built-in models register when stlib.models is imported)."""
    from . import models  # noqa: F401

    return MODELS


def data_config(values: dict, where: str = "data") -> DataConfig:
    """A validated DataConfig from a mapping of its options (errors name `where`)."""
    return _section("data", values, where)


def model_options(name: str, **options) -> ModelOptions:
    """The validated options of model `name` (ModelOptions defaults for those not given)."""
    return _section("model", {"name": name, **options}, "model")


# ---------------------------------------------------------------------------------------------
# training


class TrainConfig(Section):
    epochs: int = Field(10, ge=0)  # >= 1 for a model with weights
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    accumulation_steps: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float = Field(5.0, ge=0)  # 0 = off
    amp: Annotated[Literal["off", "bf16", "fp16", "auto"], BeforeValidator(_off)] = "off"
    compile: Annotated[Literal["off", "default", "reduce-overhead", "max-autotune"], BeforeValidator(_off)] = "off"
    loader: Literal["device", "dataloader"] = "device"
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    prefetch_factor: int = Field(2, ge=1)
    validate_every: int = Field(1, ge=1)
    drop_last: bool = False  # skip each epoch's partial last batch (under torch.compile its odd size recompiles)
    scheduler: Literal["none", "plateau", "multistep", "cosine"] = "none"
    patience: int = Field(10, ge=1)  # plateau: validations without improvement before a cut
    factor: float = Field(0.5, gt=0, le=1)
    milestones: list[int] = []  # multistep: epochs at which lr *= gamma
    gamma: float = Field(0.5, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)  # linear warmup over this many optimizer steps
    noise_std: float = Field(0.0, ge=0)  # Gaussian input augmentation, normalised units
    ema: float = Field(0.0, ge=0, le=0.99999)  # moving average of the weights, validated and tested; 0 = off
    early_stop_patience: int = Field(0, ge=0)  # stop after this many validations after the best checkpoint; 0 = off
    time_budget_s: float = Field(0.0, ge=0)  # stop at the first epoch end past this many seconds; 0 = off
    seed: int = Field(0, ge=0)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = leave as is
    # data/forward/backward/optimizer times: free on a CPU, on CUDA four syncs a step: auto = on for CPU only
    time_phases: bool | Literal["auto"] = "auto"
    quiet: bool = False  # no progress output at all
    tensorboard: bool = False  # also log for TensorBoard under <run_dir>/tensorboard/
    save_checkpoint: bool = True


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str = "scratch"
    name: str = ""
    profile: str = ""
    data: DataConfig = DataConfig()
    model: SerializeAsAny[ModelOptions] = Field(default_factory=lambda: model_options("encdec"))
    train: TrainConfig = TrainConfig()

    def to_dict(self) -> dict:
        return self.model_dump()

    def dotted(self) -> dict:
        """Every key as a dotted name: {'stage': 'x', 'train.lr': 0.1, ...} (the form overrides take)."""
        return _flatten(self.to_dict())


SECTIONS = ("data", "model", "train")
TOP_SCALARS = ("stage", "name", "profile")
PROFILE_KEYS = (*SECTIONS, *TOP_SCALARS, "base", "presets", "notebooks")


# ---------------------------------------------------------------------------------------------
# validation: pydantic's errors in the words of a params file


def _did_you_mean(key: str, valid) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _suggest(key: str, valid) -> str:
    return _did_you_mean(key, valid) or f" (valid: {', '.join(sorted(valid))})"


def _explain(err: dict, key: str, cls) -> str:
    """One pydantic error about `key` ('train.lr') -> what the user must change."""
    kind, ctx, got = err["type"], err.get("ctx", {}), err.get("input")
    field = key.rpartition(".")[2]
    if kind == "extra_forbidden":
        section = key.partition(".")[0]
        if section == "model" and any(field in c.model_fields for c in MODELS.values()):
            takes = [f for f in cls.model_fields if f != "name"]
            its = f"its options are: {', '.join(takes)}" if takes else "it takes no options"
            return f"{key} does not apply to model {cls.model_fields['name'].default}; {its}"
        return f"unknown key '{key}'{_suggest(key, [f'{section}.{f}' for f in cls.model_fields])}"
    if kind == "literal_error":
        choices = [c.strip("'") for c in ctx["expected"].replace(" or ", ", ").split(", ")]
        return f"{key} must be one of {', '.join(choices)}; got {got!r}{_did_you_mean(str(got), choices)}"
    bounds = {"greater_than_equal": ">= {ge}", "greater_than": "> {gt}", "less_than_equal": "<= {le}"}
    if kind in bounds:
        return f"{key} must be {bounds[kind].format(**ctx)}, got {got!r}"
    words = dict(int="an integer", float="a number", bool="true or false", string="a string", list="a list")
    words |= dict(finite="a finite number", dict="a mapping of keys to values")
    what = next((w for k, w in words.items() if kind.startswith(k)), None)
    if what:
        quote = " (quote it in YAML: yes/no/on/off read as booleans)" if isinstance(got, bool) else ""
        return f"{key} must be {what}, got {got!r}{quote}"
    return f"{key}: {err['msg']}"


def _section(section: str, values: Any, where: str, origin: dict | None = None):
    """Validate one section's mapping; errors name the layer that set the key (origin) or `where`."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {section} must be a mapping of keys to values, got {values!r}")
    cls = {"data": DataConfig, "train": TrainConfig}.get(section)
    if section == "model":
        name = values.get("name", "encdec")
        cls = model_classes().get(name)
        if cls is None:
            names = list(MODELS)
            raise ConfigError(
                f"{(origin or {}).get('model.name', where)}: model.name must be one of "
                f"{', '.join(names)}; got {name!r}{_did_you_mean(str(name), names)}"
            )
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        loc = err["loc"]
        key = f"{section}.{loc[0]}" if loc else section
        said = (origin or {}).get(key, where)
        text = _explain(err, key + "".join(f"[{i}]" for i in loc[1:]), cls)
        if said == where != "override" and err["type"] == "extra_forbidden" and text.startswith("unknown key"):
            text = f"{section}: " + text.replace(f"'{section}.", "'")  # a params file's section, in its own words
        raise ConfigError(f"{said}: {text}") from None


def build_run_config(tree: dict, where: str = "config", origin: dict | None = None) -> RunConfig:
    """A nested dict (as in a params file or a saved config.yaml) -> validated RunConfig."""
    for key in tree:
        if key not in (*SECTIONS, *TOP_SCALARS):
            raise ConfigError(f"{where}: unknown key '{key}'{_suggest(str(key), [*SECTIONS, *TOP_SCALARS])}")
    parts = {s: _section(s, tree.get(s) or {}, where, origin) for s in SECTIONS}
    for k in TOP_SCALARS:
        if tree.get(k) is not None and (isinstance(tree[k], bool) or not isinstance(tree[k], str | int | float)):
            raise ConfigError(f"{where}: {k} must be a string, got {tree[k]!r}")
    cfg = RunConfig(**{k: str(tree[k]) for k in TOP_SCALARS if tree.get(k) is not None}, **parts)
    if cfg.train.epochs < 1 and cfg.model.trains:
        untrained = " and ".join(n for n, c in MODELS.items() if not c.trains)
        raise ConfigError(
            f"{where}: train.epochs must be >= 1 for model.name {cfg.model.name} (0 would score the "
            f"untrained weights), got {cfg.train.epochs}; only {untrained} train no epochs"
        )
    try:
        cfg.model.check(cfg)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg


def _flatten(tree: dict) -> dict:
    return {
        f"{k}.{f}" if isinstance(v, dict) else k: w
        for k, v in tree.items()
        for f, w in (v.items() if isinstance(v, dict) else [(None, v)])
    }


# params files (presets, bases, overrides) compose into these configs: stlib/params.py
from .params import Profile, load, load_profile, parse_override, replace, set_dotted  # noqa: E402, F401
