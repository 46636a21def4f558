"""Typed, validated configuration: params/*.yaml -> RunConfig (data, model, train).

A params file (one per hardware profile) looks like::

    profile: default
    stage: "01"
    data:  {name: synthetic, ...}      # DataConfig
    model: {name: encdec, ...}         # ModelConfig
    train: {epochs: 10, ...}           # TrainConfig
    presets:                           # named sets of dotted overrides (validated too)
      stid: {model.name: stid, train.lr: 0.002}
    notebooks:                         # papermill parameters per stage notebook
      "01": {seeds: [0]}

Every key is checked: an unknown key is an error naming it and the closest valid name; a
wrong type or an out-of-range value is an error naming the field; an option the chosen model or
dataset does not take (MODEL_OPTIONS, DATASET_OPTIONS) is an error naming the option, the model and
the options it takes.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A params file or override that does not validate."""


def _f(default, *, choices=None, lo=None, hi=None, lo_open=False):
    """A dataclass field with validation metadata."""
    meta = {"choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# The DataConfig fields each kind of dataset takes (value_name and unit relabel any dataset); as MODEL_OPTIONS.
_WINDOWS = ("in_steps", "out_steps")
LABEL_OPTIONS = ("value_name", "unit")
DATASET_OPTIONS = {
    "synthetic": (*_WINDOWS, "num_sensors", "num_days", "seed", "interval_minutes", "start_time", "split",
                  *LABEL_OPTIONS),
    "pems08-tail": (*_WINDOWS, *LABEL_OPTIONS),
    "PEMS": (*_WINDOWS, "split", "missing_value", *LABEL_OPTIONS),  # PEMS03/04/07/08
    "DCRNN": (*_WINDOWS, "split", "missing_value", *LABEL_OPTIONS),  # METR-LA, PEMS-BAY
    "file": (*_WINDOWS, "path", "edges", "edges_by", "interval_minutes", "start_time", "split", "missing_value",
             *LABEL_OPTIONS),
}
PEMS_NAMES = ("PEMS03", "PEMS04", "PEMS07", "PEMS08")
DCRNN_NAMES = ("METR-LA", "PEMS-BAY")


def dataset_kind(name: str) -> str | None:
    """The DATASET_OPTIONS key of a data.name ('PEMS08' -> 'PEMS'), None for a name no loader knows."""
    if name in ("synthetic", "pems08-tail", "file"):
        return name
    return "PEMS" if name.upper() in PEMS_NAMES else "DCRNN" if name.upper() in DCRNN_NAMES else None


@dataclass
class DataConfig:
    name: str = _f("synthetic")  # synthetic | pems08-tail | PEMS03/04/07/08 | METR-LA | PEMS-BAY | file
    in_steps: int = _f(12, lo=1)
    out_steps: int = _f(12, lo=1)
    # synthetic generator
    num_sensors: int = _f(48, lo=4)
    num_days: int = _f(21, lo=2)
    seed: int = _f(0, lo=0)
    # "file": your own data
    # .csv (rows = time, columns = sensor ids, optional time column), .npz/.npy (T, N[, C]) or .h5 (pandas
    # table, DCRNN's layout)
    path: str | None = _f(None)
    edges: str | None = _f(None)  # edge list CSV from,to[,cost], dense N x N matrix (.csv/.npy/.npz) or adj_mx.pkl
    # how an edge list names sensors: by the data's sensor ids, by position 0..N-1, or auto
    edges_by: str = _f("auto", choices=("auto", "id", "position"))
    interval_minutes: int = _f(5, lo=1)  # for files without timestamps (a time column sets it)
    start_time: str | None = _f(None)  # for files without timestamps (a time column sets it)
    split: list[float] = _f([0.6, 0.2, 0.2])
    # a value that marks a missing reading (besides empty cells and NaN): such cells are stored as 0 and masked
    # in the loss and the metrics
    missing_value: float | None = _f(None)
    # labels of the target (any dataset): plots and forecasts say "speed (mph)" instead of "flow"
    value_name: str | None = _f(None)  # what the target measures (default: the dataset's own: flow, speed, value)
    unit: str | None = _f(None)  # its unit (default: the dataset's own: vehicles/5 min, mph, none)


# The ModelConfig fields each model takes. build_model passes a model exactly these; a field set in a params file,
# a preset or an override for a model that does not take it is a config error (see check_options).
_TRANSFORMER = ("d_model", "n_heads", "encoder_depth", "decoder_depth", "ffn_mult", "dropout", "pos_encoding",
                "use_denoising", "denoise_mask_ratio", "denoise_noise_std", "denoise_weight", "attn_short", "patch",
                "head", "series_embedding", "embedding", "graph_hops", "day_embedding", "stem_layers", "stid_head",
                "embed_dim", "daily_profile")
MODEL_OPTIONS = {
    "last_value": (),
    "historical_average": ("by_weekday",),
    "stid": ("embed_dim", "num_layers", "dropout", "daily_profile"),
    "encdec": _TRANSFORMER,
    "alternating": (*_TRANSFORMER, "pattern", "adaptive_dim"),
}
MODEL_NAMES = tuple(MODEL_OPTIONS)
UNTRAINED_MODELS = ("last_value", "historical_average")  # no weights to train: they run 0 epochs whatever train.epochs


@dataclass
class ModelConfig:
    name: str = _f("encdec", choices=MODEL_NAMES)
    # transformer models
    d_model: int = _f(64, lo=1)
    n_heads: int = _f(4, lo=1)
    encoder_depth: int = _f(4, lo=1)
    decoder_depth: int = _f(2, lo=0)
    ffn_mult: int = _f(4, lo=1)
    dropout: float = _f(0.05, lo=0.0, hi=0.95)
    pos_encoding: str = _f("fixed", choices=("fixed", "learned"))
    use_denoising: bool = _f(True)
    denoise_mask_ratio: float = _f(0.15, lo=0.0, hi=0.95)
    denoise_noise_std: float = _f(0.1, lo=0.0)
    denoise_weight: float = _f(0.1, lo=0.0)
    # sequences of at most this many steps attend by explicit matmuls instead of the fused kernels, which
    # pad a 12-step sequence to a 64- or 128-row tile; for GPUs (slower on CPU). 0 = always the fused kernels
    attn_short: int = _f(0, lo=0)
    # transformer input and output (encdec, alternating)
    # time steps per token: the T input steps become T / patch tokens (T must divide), each embedding its
    # patch's values; cuts the tokens and the attention cost by patch
    patch: int = _f(1, lo=1)
    # decoder: horizon queries attend to each other and to the encoder memory (the roadmap's encoder-decoder);
    # linear: each sensor's encoder tokens, flattened, map to the horizon by one linear layer (STAEformer's
    # output projection; no decoder blocks)
    head: str = _f("decoder", choices=("decoder", "linear"))
    # add STID's series encoding (one linear map of the sensor's whole input window) to every token, so each
    # token sees the full window from the first layer
    series_embedding: bool = _f(False)
    # sum: value, node, time and position embeddings summed at d_model; stid: STID's encoding per token (value
    # patch, whole window, node, time of day, day of week, embed_dim each, concatenated, then stem_layers
    # residual MLPs), with every block's residual branch starting at zero, so the model starts as STID and
    # attention refines it
    embedding: str = _f("sum", choices=("sum", "stid"))
    # embedding stid: also encode the windows of the sensors 1..graph_hops hops downstream and upstream on the
    # road graph (averaged), as DCRNN's diffusion; 0 = off
    graph_hops: int = _f(0, lo=0)
    # embedding stid: one day-of-week vector per day (week), one for Monday-Friday and one for the weekend
    # (weekend: each class is seen on more training days), or none
    day_embedding: str = _f("week", choices=("week", "weekend", "none"))
    stem_layers: int = _f(2, lo=0)  # embedding stid: STID's residual MLP layers before the blocks
    # embedding stid, head linear: STID's regression head on each sensor's STID state, with the blocks' linear
    # head (starting at zero) added to it, so the model starts as STID exactly and the attention blocks learn a
    # correction to STID's forecast
    stid_head: bool = _f(False)
    # stid, embedding stid: each sensor's mean day in the training rows (missing values excluded), read at the
    # input and forecast steps, encoded as one more embed_dim part of STID's hidden state. all_days: the mean of
    # every training day (which holds each training window's own targets); other_weekdays: of the days whose
    # weekday differs from the step's, so no window's profile holds its own targets; none: off
    daily_profile: str = _f("none", choices=("none", "all_days", "other_weekdays"))
    # alternating spatio-temporal model (stage 2)
    pattern: str = _f("alternating", choices=("alternating", "stacked", "temporal"))
    adaptive_dim: int = _f(0, lo=0)
    # STID-style MLP
    embed_dim: int = _f(32, lo=1)
    num_layers: int = _f(3, lo=1)
    # historical average
    by_weekday: bool = _f(True)

    def __post_init__(self):
        if self.name in ("encdec", "alternating") and self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")
        if self.name in ("encdec", "alternating") and self.head == "decoder" and self.decoder_depth < 1:
            raise ConfigError("model.decoder_depth must be >= 1 with model.head: decoder (or set model.head: linear)")


@dataclass
class TrainConfig:
    epochs: int = _f(10, lo=0)  # >= 1 for a model with weights; last_value and historical_average ignore it
    batch_size: int = _f(64, lo=1)
    eval_batch_size: int = _f(256, lo=1)
    accumulation_steps: int = _f(1, lo=1)
    lr: float = _f(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = _f(1e-4, lo=0.0)
    grad_clip: float = _f(5.0, lo=0.0)  # 0 = off
    loss: str = _f("masked_mae", choices=("masked_mae", "huber"))
    huber_delta: float = _f(1.0, lo=0.0, lo_open=True)
    amp: str = _f("off", choices=("off", "bf16", "fp16", "auto"))
    compile: str = _f("off", choices=("off", "default", "reduce-overhead", "max-autotune"))
    loader: str = _f("device", choices=("device", "dataloader"))
    num_workers: int = _f(0, lo=0)
    pin_memory: bool = _f(False)
    prefetch_factor: int = _f(2, lo=1)
    validate_every: int = _f(1, lo=1)
    # skip each epoch's last, partial training batch (a new shuffle picks other windows every epoch): under
    # torch.compile its odd size costs a recompile with a dynamic batch dimension
    drop_last: bool = _f(False)
    scheduler: str = _f("none", choices=("none", "plateau", "multistep", "cosine"))
    patience: int = _f(10, lo=1)  # plateau: validations without improvement before a cut
    factor: float = _f(0.5, lo=0.0, hi=1.0, lo_open=True)
    milestones: list[int] = _f([])  # multistep: epochs at which lr *= gamma
    gamma: float = _f(0.5, lo=0.0, hi=1.0, lo_open=True)
    min_lr: float = _f(0.0, lo=0.0)
    warmup_steps: int = _f(0, lo=0)  # linear warmup over this many optimizer steps
    noise_std: float = _f(0.0, lo=0.0)  # Gaussian input augmentation, normalised units
    # exponential moving average of the weights, this decay per optimizer step (0 = off); validation, the best
    # checkpoint and the test use the average
    ema: float = _f(0.0, lo=0.0, hi=0.99999)
    # model.stid_head: the first this many epochs train STID's path alone (the attention blocks skipped, at
    # STID's cost per epoch); the blocks then join for the rest
    stem_epochs: int = _f(0, lo=0)
    early_stop_patience: int = _f(0, lo=0)  # validations without improvement; 0 = off
    # stop at the first epoch end past this many training seconds (0 = off); the cosine schedule then anneals
    # over the budget
    time_budget_s: float = _f(0.0, lo=0.0)
    seed: int = _f(0, lo=0)
    device: str = _f("auto")  # auto | cpu | cuda | cuda:N | mps
    threads: int = _f(0, lo=0)  # torch CPU threads; 0 = leave as is
    time_phases: bool = _f(True)  # split step time into data/forward/backward/optimizer (syncs the GPU)
    quiet: bool = _f(False)  # no progress output at all (no bar, no epoch lines)
    # also log losses, validation MAE, learning rate and the final test metrics for TensorBoard under
    # <run_dir>/tensorboard/ (needs the tensorboard package; view with `tensorboard --logdir outputs/runs`)
    tensorboard: bool = _f(False)
    save_checkpoint: bool = _f(True)


@dataclass
class RunConfig:
    stage: str = _f("scratch")
    name: str = _f("")
    profile: str = _f("")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        m = self.model
        if self.train.epochs < 1 and m.name not in UNTRAINED_MODELS:
            raise ConfigError(f"train.epochs must be >= 1 for model.name {m.name} (0 would score the untrained "
                              f"weights), got {self.train.epochs}; only {' and '.join(UNTRAINED_MODELS)} "
                              "train no epochs")
        if m.name in ("encdec", "alternating") and self.data.in_steps % m.patch:
            raise ConfigError(f"model.patch ({m.patch}) must divide data.in_steps ({self.data.in_steps})")
        stem = self.train.stem_epochs
        if stem and not (m.name in ("encdec", "alternating") and m.stid_head):
            raise ConfigError(f"train.stem_epochs ({stem}) needs a model with STID's head to train alone first "
                              f"(model.name encdec or alternating with model.stid_head: true); model.name is {m.name}"
                              f"{'' if m.name not in ('encdec', 'alternating') else ' without model.stid_head'}")
        if stem and stem >= self.train.epochs:
            raise ConfigError(f"train.stem_epochs ({stem}) must be below train.epochs ({self.train.epochs}): "
                              "the attention blocks would never train")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def dotted(self) -> dict:
        """Every key as a dotted name: {'stage': 'x', 'train.lr': 0.1, ...} (the form overrides take)."""
        out = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
TOP_SCALARS = ("stage", "name", "profile")
PROFILE_KEYS = ("data", "model", "train", "presets", "notebooks", *TOP_SCALARS)


# ---------------------------------------------------------------------------------------------
# validation helpers


def _suggest(key: str, valid) -> str:
    """' (did you mean 'x'?)' for a close valid name, else the list of valid names."""
    return _did_you_mean(key, valid) or f" (valid: {', '.join(sorted(valid))})"


def _did_you_mean(key: str, valid) -> str:
    """' (did you mean 'x'?)' for a close valid name, else ''."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """Check one value against its field's type and range; return it in the field's type."""
    tp = f.type if not isinstance(f.type, str) else eval(f.type, globals())  # noqa: S307 (own annotations)
    args = typing.get_args(tp)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} must not be empty (null)")
    base = next((a for a in args if a is not type(None)), tp) if optional else tp
    origin = typing.get_origin(base)
    meta = f.metadata
    if base is str and isinstance(value, bool):
        # YAML 1.1 reads unquoted off/on/yes/no as booleans: `amp: off` means the choice "off"
        word = "on" if value else "off"
        if meta.get("choices") and word in meta["choices"]:
            value = word
        else:
            raise ConfigError(f"{where} must be a string, got {value!r} "
                              "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value)")
    if origin is list:
        (item_tp,) = typing.get_args(base)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list of {item_tp.__name__}, got {value!r}")
        return [_scalar(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    value = _scalar(value, base, where)
    if meta.get("choices") and value not in meta["choices"]:
        # the choices are listed once, here; a close one is pointed out
        raise ConfigError(f"{where} must be one of {', '.join(meta['choices'])}; got {value!r}"
                          f"{_did_you_mean(str(value), meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{where} must be {op} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where} must be <= {hi}, got {value!r}")
    return value


def _scalar(value: Any, tp: type, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        out = None
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        if out is None:
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(out):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp}")


def build_section(cls, values: dict, where: str):
    """Instantiate a section dataclass from a dict, validating every key and value."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'{_suggest(str(key), fields)}")
        kwargs[key] = _coerce(value, fields[key], f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _field(key: str) -> dataclasses.Field | None:
    """The dataclass field a dotted key ('train.lr') or top-level key ('stage') names, else None."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in TOP_SCALARS:
        return next(f for f in dataclasses.fields(RunConfig) if f.name == parts[0])
    if len(parts) == 2 and parts[0] in SECTIONS:
        return next((f for f in dataclasses.fields(SECTIONS[parts[0]]) if f.name == parts[1]), None)
    return None


def _all_dotted() -> list[str]:
    return [*TOP_SCALARS, *(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls))]


def set_dotted(tree: dict, key: str, value: Any, where: str) -> None:
    """Set tree[section][field] from a dotted key, checking the key and the value (errors name `where`)."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in TOP_SCALARS:
        tree[parts[0]] = _coerce(value, _field(key), f"{where}: {key}")
        return
    if len(parts) != 2 or parts[0] not in SECTIONS:
        head = parts[0]
        if head not in SECTIONS:
            close = difflib.get_close_matches(key, _all_dotted(), n=1, cutoff=0.5)
            hint = (f" (did you mean '{close[0]}'?)" if close
                    else f" (keys are section.field with section one of {', '.join(SECTIONS)}, or {', '.join(TOP_SCALARS)})")
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        raise ConfigError(f"{where}: '{key}' must look like section.field (e.g. train.lr)")
    section, name = parts
    f = _field(key)
    if f is None:
        dotted = [f"{section}.{v.name}" for v in dataclasses.fields(SECTIONS[section])]
        raise ConfigError(f"{where}: unknown key '{key}'{_suggest(key, dotted)}")
    value = _coerce(value, f, f"{where}: {key}")
    sec = tree.get(section)
    if sec is None:
        sec = tree[section] = {}
    if isinstance(sec, dict):  # anything else is reported by build_run_config
        sec[name] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'train.lr=0.002' -> ('train.lr', 0.002): the value is read as YAML, then typed by the field.

    For a known field the YAML 1.1 surprises are undone: `train.lr=1e-3` gives the float 0.001 (YAML 1.1
    reads it as a string), `train.amp=off` the string "off" (not False), `stage=01` the string "01"
    (not the integer 1). Values are validated when the override is applied.
    """
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. train.epochs=5), got {text!r}")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set expects key=value (e.g. train.epochs=5), got {text!r} (no key)")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    f = _field(key)
    if f is not None and value is not None:
        value = _retype(value, raw, f)
    return key, value


def _to_float(value: Any) -> Any:
    """1 / '1e-3' -> 1.0 / 0.001; anything else unchanged (and reported by validation)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _retype(value: Any, raw: str, f: dataclasses.Field) -> Any:
    """A YAML-read override value in the field's type where YAML 1.1 guessed another one."""
    tp = f.type if not isinstance(f.type, str) else eval(f.type, globals())  # noqa: S307 (own annotations)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if type(None) in typing.get_args(tp) and len(args) == 1 else tp
    if base is str and isinstance(value, (bool, int, float)):
        return raw  # stage=01 -> "01", train.amp=off -> "off", data.name=1e3 -> "1e3"
    if base is float:
        return _to_float(value)
    if typing.get_origin(base) is list and typing.get_args(base) == (float,) and isinstance(value, list):
        return [_to_float(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# loading


@dataclass
class Profile:
    """A params file: the base run config, named presets and per-notebook parameters."""

    path: Path
    base: dict
    presets: dict[str, dict]
    notebooks: dict[str, dict]

    @property
    def name(self) -> str:
        return self.base.get("profile") or self.path.stem

    def run_config(self, preset: str | None = None, overrides: dict | list | tuple = (), **top) -> RunConfig:
        """The RunConfig of this profile, with a preset then dotted overrides applied."""
        tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.base.items()}
        tree.setdefault("profile", self.name)
        layers = [(str(self.path), [f"{s}.{k}" for s in SECTIONS if isinstance(tree.get(s), dict) for k in tree[s]])]
        if preset is not None:
            if preset not in self.presets:
                raise ConfigError(f"{self.path}: unknown preset '{preset}'{_suggest(preset, self.presets)}")
            for k, v in self.presets[preset].items():
                set_dotted(tree, k, v, f"{self.path}: presets.{preset}")
            layers.append((f"{self.path}: presets.{preset}", list(self.presets[preset])))
        items = list(overrides.items() if isinstance(overrides, dict)
                     else [parse_override(o) if isinstance(o, str) else o for o in overrides])
        for k, v in items:
            set_dotted(tree, k, v, "override")
        layers.append(("override", [k for k, _ in items]))
        tree.update({k: v for k, v in top.items() if v is not None})
        cfg = build_run_config(tree, str(self.path))
        check_options(cfg, layers)
        return cfg


def check_options(cfg: RunConfig, layers: list[tuple[str, list[str]]]) -> None:
    """An option set for a model or dataset that does not take it (MODEL_OPTIONS, DATASET_OPTIONS) is an error
    naming the option, the model and the options it takes.

    layers: [(where, dotted keys set there)] in the order they were applied (params file, preset, overrides).
    Only the keys set by the layer that chose the model (the last to set model.name) and by the layers after it
    are checked: a params file that configures the encoder-decoder and a preset that switches to STID leave the
    file's encoder-decoder options unused, not wrong. Likewise for data.name and the data options.
    """
    for section in ("model", "data"):
        chosen = max((i for i, (_, keys) in enumerate(layers) if f"{section}.name" in keys), default=0)
        for where, keys in layers[chosen:]:
            options = [k.partition(".")[2] for k in keys if k.partition(".")[0] == section]
            check_applies(section, getattr(cfg, section).name, options, where)


def options_of(section: str, name: str) -> tuple[str, ...] | None:
    """The options model `name` (section "model") or dataset `name` ("data") takes; None for a name none knows."""
    if section == "model":
        return MODEL_OPTIONS.get(name)
    kind = dataset_kind(name)
    return DATASET_OPTIONS[kind] if kind else None


def check_applies(section: str, name: str, options, where: str) -> None:
    """Each of `options` (field names of `section`) must be one that model or dataset `name` takes."""
    takes = options_of(section, name)
    if takes is None:
        return  # an unknown name: building the model or loading the dataset says so
    for option in options:
        if option != "name" and option not in takes:
            what = "model" if section == "model" else "dataset"
            its = f"its options are: {', '.join(takes)}" if takes else "it takes no options"
            raise ConfigError(f"{where}: {section}.{option} does not apply to {what} {name}; {its}")


def build_run_config(tree: dict, where: str = "config") -> RunConfig:
    """A nested dict (as in a params file or a saved config.yaml) -> validated RunConfig."""
    for key in tree:
        if key not in (*SECTIONS, *TOP_SCALARS):
            raise ConfigError(f"{where}: unknown key '{key}'{_suggest(str(key), [*SECTIONS, *TOP_SCALARS])}")
    sections = {name: build_section(cls, tree.get(name) or {}, f"{where}: {name}") for name, cls in SECTIONS.items()}
    top = {k: _scalar(tree[k], str, f"{where}: {k}") for k in TOP_SCALARS if tree.get(k) is not None}
    return RunConfig(**top, **sections)


def load_profile(path: str | Path) -> Profile:
    """Read and validate a params file (base config, every preset, notebook parameters)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_not_a_params_file(path))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{path}: unknown key '{key}'{_suggest(str(key), PROFILE_KEYS)}")
    base = {k: v for k, v in raw.items() if k not in ("presets", "notebooks")}
    presets = raw.get("presets") or {}
    notebooks = raw.get("notebooks") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"{path}: presets must be a mapping of preset names to dotted overrides")
    if not isinstance(notebooks, dict):
        raise ConfigError(f"{path}: notebooks must be a mapping of stages (\"01\") to notebook parameters")
    # an unquoted stage key 01 reads as the integer 1 in YAML 1.1: keep the two-digit stage name
    notebooks = {(f"{k:02d}" if isinstance(k, int) and not isinstance(k, bool) else str(k)): (v or {})
                 for k, v in notebooks.items()}
    presets = {str(k): (v or {}) for k, v in presets.items()}
    for name, p in presets.items():
        if not isinstance(p, dict):
            raise ConfigError(f"{path}: presets.{name} must be a mapping of dotted keys (e.g. train.lr: 0.002)")
    for stage, p in notebooks.items():
        if not isinstance(p, dict):
            raise ConfigError(f"{path}: notebooks.{stage} must be a mapping of parameter names to values")
    profile = Profile(path, base, presets, notebooks)
    profile.run_config()  # validate the base ...
    for name in presets:  # ... and every preset now, not when a notebook reaches it
        profile.run_config(preset=name)
    return profile


def _not_a_params_file(path: Path) -> str:
    """Why path is no params file, with the YAML files that are there: in the folder given, else beside it."""
    folder = path if path.is_dir() else path.parent
    near = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    what = "a directory was given, not a params file" if path.is_dir() else "params file not found"
    hint = (f" (YAML files in {folder}: {', '.join(near)})" if near else f" (no YAML files in {folder})"
            if folder.is_dir() else f" (folder {folder} does not exist)")
    example = f"; e.g. --params {folder / near[0]}" if path.is_dir() and near else ""
    return f"{what}: {path}{hint}{example}"


def load(path: str | Path, overrides=(), preset: str | None = None) -> RunConfig:
    """Params file + optional preset + dotted overrides -> validated RunConfig."""
    return load_profile(path).run_config(preset=preset, overrides=overrides)


def replace(cfg: RunConfig, **dotted) -> RunConfig:
    """A copy of cfg with dotted overrides applied, validated (``replace(cfg, **{"train.lr": 1e-3})``)."""
    tree = cfg.to_dict()
    for k, v in dotted.items():
        set_dotted(tree, k, v, "override")
    out = build_run_config(tree)
    check_options(out, [("override", list(dotted))])
    return out
