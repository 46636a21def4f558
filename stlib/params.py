"""Params files -> RunConfig: presets on base presets, a file on a base file, dotted overrides, in layers::

    profile: default
    base: other.yaml                   # optional: a params file whose sections this one replaces
    data:  {name: synthetic, ...}
    model: {name: encdec, ...}         # the options of the model `name` picks
    train: {epochs: 10, ...}
    presets:                           # dotted overrides, each optionally on base presets (applied first)
      stid: {model.name: stid, train.lr: 0.002}
      stid_long: {base: stid, train.epochs: 300}
    notebooks:                         # papermill parameters per stage notebook
      "01": {seeds: [0]}

YAML is read strictly (a key written twice is an error naming its line). Layers apply in order (params file,
presets, overrides); a layer that picks another model keeps the earlier options the new model takes and drops the
rest (unused, not wrong). The schema and its validation are stlib/config.py's.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .config import (
    MODELS,
    PROFILE_KEYS,
    SECTIONS,
    TOP_SCALARS,
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    _suggest,
    build_run_config,
    check_applies,
    model_classes,
)


def _field_type(key: str):
    """The annotation of the field a dotted key names (a model option: as any registered model declares it)."""
    section, _, name = key.partition(".")
    if not name:
        return str if key in TOP_SCALARS else None
    classes = (
        model_classes().values() if section == "model" else [{"data": DataConfig, "train": TrainConfig}.get(section)]
    )
    return next((c.model_fields[name].annotation for c in classes if c and name in c.model_fields), None)


def parse_override(text: str) -> tuple[str, Any]:
    """'train.lr=0.002' -> ('train.lr', 0.002): the value read as YAML, then typed by its field (YAML 1.1's
    '1e-3' becomes 0.001, 'off' stays the string "off", 'stage=01' stays "01")."""
    key, eq, raw = (s.strip() for s in text.partition("="))
    if not eq or not key:
        raise ConfigError(f"--set expects key=value (e.g. train.epochs=5), got {text!r}{'' if key else ' (no key)'}")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    tp = _field_type(key)
    if tp is None or value is None or (isinstance(value, bool) and tp in (int, float)):
        return key, value
    if isinstance(value, bool | int | float) and (tp is str or str(tp).startswith(("str", "typing.Literal"))):
        return key, raw if value is not False or "'off'" not in str(tp) else "off"
    try:
        return key, TypeAdapter(tp).validate_python(value)
    except ValidationError:
        return key, value  # reported, with its layer, when the config is built


# ---------------------------------------------------------------------------------------------
# layers: params file, presets, overrides


def _compose(layers: list[tuple[str, dict]], first: int = 0) -> tuple[dict, dict]:
    """[(where, {dotted key: value})] -> (nested tree, {dotted key: the layer that set it}).

    The model's options are taken from the layer that last set model.name on; an earlier layer's option stays
    if the chosen model takes it. Data options are checked from the layer that last set data.name on.
    """
    chooser = {
        s: max((i for i, (_, kv) in enumerate(layers) if f"{s}.name" in kv), default=0) for s in ("model", "data")
    }
    chooser["data"] = max(chooser["data"], first)  # layers before `first` were checked when they were made
    final = {"model.name": "encdec", "data.name": "synthetic"}
    for _, kv in layers:
        final.update({k: v for k, v in kv.items() if k in final})
    takes = model_classes().get(final["model.name"])
    tree, origin = {s: {} for s in SECTIONS}, {}
    for i, (where, kv) in enumerate(layers):
        for key, value in kv.items():
            section, dot, field = key.partition(".")
            if not dot and key in TOP_SCALARS:
                tree[key] = value
            elif section not in SECTIONS or not field or "." in field:
                close = difflib.get_close_matches(key, _all_dotted(), n=1, cutoff=0.5)
                hint = (
                    f" (did you mean '{close[0]}'?)"
                    if close
                    else (
                        f" (keys are section.field with section one of {', '.join(SECTIONS)}, or {', '.join(TOP_SCALARS)})"
                    )
                )
                if section in SECTIONS:
                    raise ConfigError(f"{where}: '{key}' must look like section.field (e.g. train.lr)")
                raise ConfigError(f"{where}: unknown key '{key}'{hint}")
            elif (
                section == "model"
                and i < chooser["model"]
                and takes
                and field not in takes.model_fields
                and any(field in c.model_fields for c in MODELS.values())
            ):
                continue  # another model's option, before the layer that picked this model: unused, not wrong
            else:
                tree[section][field], origin[key] = value, where
    for where, kv in layers[chooser["data"] :]:
        check_applies("data", final["data.name"], [k[5:] for k in kv if k.startswith("data.")], where)
    return tree, origin


def _all_dotted() -> list[str]:
    fields = {"data": DataConfig.model_fields, "train": TrainConfig.model_fields}
    fields["model"] = {f for c in model_classes().values() for f in c.model_fields}
    return [*TOP_SCALARS, *(f"{s}.{f}" for s, fs in fields.items() for f in fs)]


class Profile:
    """A params file: the base run config, named presets and per-notebook parameters."""

    def __init__(self, path: Path, base: dict, presets: dict[str, dict], notebooks: dict[str, dict]):
        self.path, self.base, self.presets, self.notebooks = path, base, presets, notebooks

    @property
    def name(self) -> str:
        return self.base.get("profile") or self.path.stem

    def preset_layers(self, preset: str, seen=()) -> list[tuple[str, dict]]:
        """A preset's layers: its base presets' (in order, recursively), then its own keys."""
        if preset not in self.presets:
            raise ConfigError(f"{self.path}: unknown preset '{preset}'{_suggest(preset, self.presets)}")
        if preset in seen:
            raise ConfigError(f"{self.path}: presets.{preset} is its own base ({' -> '.join([*seen, preset])})")
        own = dict(self.presets[preset])
        bases = own.pop("base", [])
        layers = [
            la for b in ([bases] if isinstance(bases, str) else bases) for la in self.preset_layers(b, (*seen, preset))
        ]
        return [*layers, (f"{self.path}: presets.{preset}", own)]

    def run_config(self, preset: str | None = None, overrides: dict | list | tuple = (), **top) -> RunConfig:
        """The RunConfig of this profile, with a preset then dotted overrides applied."""
        base = {k: v for k, v in self.base.items() if k in TOP_SCALARS}
        for s in SECTIONS:
            if self.base.get(s) is not None and not isinstance(self.base[s], dict):
                raise ConfigError(f"{self.path}: {s} must be a mapping of keys to values, got {self.base[s]!r}")
            base.update({f"{s}.{k}": v for k, v in (self.base.get(s) or {}).items()})
        base.setdefault("profile", self.name)
        layers = [(str(self.path), base), *(self.preset_layers(preset) if preset is not None else [])]
        items = (
            overrides.items()
            if isinstance(overrides, dict)
            else (parse_override(o) if isinstance(o, str) else o for o in overrides)
        )
        layers += [("override", dict(items)), ("arguments", {k: v for k, v in top.items() if v is not None})]
        tree, origin = _compose(layers)
        return build_run_config(tree, str(self.path), origin)


def _read_yaml(path: Path) -> dict:
    """A params file's top-level mapping; a key written twice anywhere is an error naming the line."""

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = []
            for k, _ in node.value:
                key = self.construct_object(k, deep=deep)
                if key in seen:
                    first = node.value[seen.index(key)][0].start_mark.line + 1
                    raise ConfigError(
                        f"{path}, line {k.start_mark.line + 1}: key '{key}' is written twice "
                        f"(first on line {first}); keep one"
                    )
                seen.append(key)
            return super().construct_mapping(node, deep)

    if not path.is_file():
        raise ConfigError(_not_a_params_file(path))
    try:
        raw = yaml.load(path.read_text(), Loader=Strict) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{path}: unknown key '{key}'{_suggest(str(key), PROFILE_KEYS)}")
    if raw.get("base") is None:
        return raw
    parent = _read_yaml((path.parent / str(raw["base"])).resolve())
    presets = {**(parent.get("presets") or {}), **(raw.get("presets") or {})}
    return {**{k: v for k, v in parent.items() if k not in ("profile", "base")}, **raw, "presets": presets}


def load_profile(path: str | Path) -> Profile:
    """Read and validate a params file (base config, every preset, notebook parameters)."""
    path = Path(path)
    raw = _read_yaml(path)
    presets, notebooks = raw.get("presets") or {}, raw.get("notebooks") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"{path}: presets must be a mapping of preset names to dotted overrides")
    if not isinstance(notebooks, dict):
        raise ConfigError(f'{path}: notebooks must be a mapping of stages ("01") to notebook parameters')
    # an unquoted stage key 01 reads as the integer 1 in YAML 1.1: keep the two-digit stage name
    notebooks = {
        (f"{k:02d}" if isinstance(k, int) and not isinstance(k, bool) else str(k)): (v or {})
        for k, v in notebooks.items()
    }
    presets = {str(k): (v or {}) for k, v in presets.items()}
    for what, table in (("presets", presets), ("notebooks", notebooks)):
        for name, p in table.items():
            if not isinstance(p, dict):
                raise ConfigError(
                    f"{path}: {what}.{name} must be a mapping of "
                    f"{'dotted keys (e.g. train.lr: 0.002)' if what == 'presets' else 'parameter names to values'}"
                )
    base = {k: v for k, v in raw.items() if k in (*SECTIONS, *TOP_SCALARS)}
    profile = Profile(path, base, presets, notebooks)
    profile.run_config()  # validate the base and every preset now, not when a notebook reaches it
    for name in presets:
        profile.run_config(preset=name)
    return profile


def _not_a_params_file(path: Path) -> str:
    """Why path is no params file, with the YAML files that are there: in the folder given, else beside it."""
    folder = path if path.is_dir() else path.parent
    near = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    what = "a directory was given, not a params file" if path.is_dir() else "params file not found"
    hint = (
        f" (YAML files in {folder}: {', '.join(near)})"
        if near
        else f" (no YAML files in {folder})"
        if folder.is_dir()
        else f" (folder {folder} does not exist)"
    )
    example = f"; e.g. --params {folder / near[0]}" if path.is_dir() and near else ""
    return f"{what}: {path}{hint}{example}"


def load(path: str | Path, overrides=(), preset: str | None = None) -> RunConfig:
    """Params file + optional preset + dotted overrides -> validated RunConfig."""
    return load_profile(path).run_config(preset=preset, overrides=overrides)


def replace(cfg: RunConfig, **dotted) -> RunConfig:
    """A copy of cfg with dotted overrides applied, validated (``replace(cfg, **{"train.lr": 1e-3})``)."""
    tree, origin = _compose([("config", cfg.dotted()), ("override", dotted)], first=1)
    return build_run_config(tree, "override", origin)


def set_dotted(tree: dict, key: str, value: Any, where: str) -> None:
    """Set tree[section][field] from a dotted key (checked when the tree is built)."""
    section, _, field = key.partition(".")
    if field:
        tree.setdefault(section, {})[field] = value
    else:
        tree[key] = value
