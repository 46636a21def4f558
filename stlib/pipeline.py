"""Run the numbered stage notebooks with papermill for one params profile.

    python -m stlib.pipeline --params params/default.yaml [--stages 00 01 ...]

Executed copies go to outputs/<profile>/NN_name.ipynb. Each notebook gets `params_file` plus the
parameters listed for its stage under `notebooks:` in the params file (checked against the
notebook's `parameters` cell before anything runs).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

from tqdm.auto import tqdm

from .config import ConfigError, load_profile
from .nb import BATCH_ENV
from .paths import REPO_ROOT, output_dir, resolve_params

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
# the roadmap's stages, in order; a notebook that does not exist yet is skipped with a message
STAGES = {
    "00": "00_data",
    "01": "01_baseline",
    "02": "02_speed",
    "03": "03_stage1_tuning",
    "04": "04_stage2_alternating",
    "05": "05_summary",
}


class PipelineError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


KERNEL = "python3"


def _stage_name(stage) -> str:
    """'1' / 1 -> '01' (the stage keys are two digits)."""
    s = str(stage).strip()
    return s.zfill(2) if s.isdigit() and len(s) < 2 else s


def _show(nb: Path) -> str:
    return str(nb.relative_to(REPO_ROOT) if nb.is_relative_to(REPO_ROOT) else nb)


def notebook_parameters(nb: Path) -> dict:
    """The parameters a notebook declares in its `parameters`-tagged cell: {name: papermill Parameter dict}."""
    import nbformat
    from papermill.translators import papermill_translators

    try:
        node = nbformat.read(str(nb), as_version=4)
    except Exception as e:  # noqa: BLE001 (bad JSON, bad schema: report which notebook)
        raise ConfigError(f"{_show(nb)} is not a readable notebook: {type(e).__name__}: {e}") from None
    cell = next((c for c in node.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ConfigError(f"{_show(nb)} has no cell tagged 'parameters' (papermill needs one declaring params_file)")
    translator = papermill_translators.find_translator(KERNEL, "python")
    return {p.name: p._asdict() for p in translator.inspect(cell)}


def plan(profile, stages=None, notebook_dir: Path | None = None):
    """[(stage, input notebook, parameters)] for the stages that exist; messages for the ones that don't.

    notebook_dir defaults to NOTEBOOK_DIR, looked up at call time (so tests can monkeypatch it).
    """
    notebook_dir = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    wanted = [_stage_name(s) for s in stages] if stages else list(STAGES)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    extra = set(profile.notebooks) - set(STAGES)
    if extra:
        raise ConfigError(
            f"{profile.path}: notebooks: unknown stage(s) {', '.join(sorted(extra))}; stages are {', '.join(STAGES)}"
        )
    jobs, skipped = [], []
    for stage in dict.fromkeys(wanted):  # in the order given, each once
        nb = notebook_dir / f"{STAGES[stage]}.ipynb"
        if not nb.exists():
            skipped.append(f"stage {stage}: {_show(nb)} does not exist yet, skipped")
            continue
        declared = notebook_parameters(nb)
        if "params_file" not in declared:
            raise ConfigError(
                f"{_show(nb)}: its parameters cell must declare params_file "
                f"(it declares: {', '.join(declared) or 'nothing'})"
            )
        params = {"params_file": str(profile.path.resolve()), **profile.notebooks.get(stage, {})}
        for key in params:
            if key not in declared:
                hint = difflib.get_close_matches(key, list(declared), n=1)
                raise ConfigError(
                    f"{profile.path}: notebooks.{stage}.{key} is not a parameter of {nb.name}"
                    + (f" (did you mean '{hint[0]}'?)" if hint else f" (it declares: {', '.join(declared)})")
                )
        jobs.append((stage, nb, params))
    return jobs, skipped


def _plain(v):
    """Tuples as lists, recursively: a YAML list and a Python tuple literal are the same parameter value."""
    return json.loads(json.dumps(v))


def parameter_drift(params_path: str = "params/default.yaml", notebook_dir: Path | None = None) -> list[str]:
    """Where the notebooks' parameters cells differ from what the profile gives them; [] when they agree.

    For the default profile the cells must hold exactly what `make run` passes (params_file as written here, plus
    the profile's notebooks block), so that a notebook opened in JupyterLab and run top to bottom computes what the
    pipeline computes. A value the profile does not set is the cell's own, in both.
    """
    profile = load_profile(resolve_params(params_path))
    notebook_dir = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    problems = []
    for stage, stem in STAGES.items():
        nb = notebook_dir / f"{stem}.ipynb"
        if not nb.exists():
            continue
        declared = notebook_parameters(nb)
        given = {"params_file": str(params_path), **profile.notebooks.get(stage, {})}
        for key, want in given.items():
            if key not in declared:
                problems.append(f"{nb.name}: {key} is set by {params_path} but not declared in its parameters cell")
                continue
            source = declared[key]["default"]
            try:
                have = ast.literal_eval(source)
            except (ValueError, SyntaxError):
                problems.append(f"{nb.name}: {key} = {source} is not a literal (papermill needs one)")
                continue
            if _plain(have) != _plain(want):
                problems.append(f"{nb.name}: {key} = {have!r} in its parameters cell, {want!r} from {params_path}")
    return problems


def run(
    params_path: str, stages=None, out_dir: Path | None = None, notebook_dir: Path | None = None, quiet: bool = False
) -> list[Path]:
    """Execute the stage notebooks in order (with STLIB_BATCH=1: they write to outputs/<profile>/); return the
    executed copies' paths."""
    profile = load_profile(resolve_params(params_path))
    jobs, skipped = plan(profile, stages, notebook_dir)  # every check before anything runs
    out = Path(out_dir) if out_dir is not None else output_dir() / profile.name
    out.mkdir(parents=True, exist_ok=True)
    for msg in skipped:
        print(msg)
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    done, bar = [], tqdm(jobs, desc=f"profile {profile.name}", unit="notebook", disable=quiet)
    # the notebooks write to outputs/<profile>/ only in a batch run (stlib.nb.profile_out); by hand, elsewhere.
    # STLIB_BATCH=1 is inherited by every kernel papermill starts
    with mock.patch.dict(os.environ, {BATCH_ENV: "1"}):
        for stage, nb, params in bar:
            bar.set_postfix_str(nb.name)
            target, t0 = out / nb.name, time.time()
            try:
                pm.execute_notebook(
                    str(nb),
                    str(target),
                    parameters=params,
                    cwd=str(REPO_ROOT),
                    progress_bar=False,
                    kernel_name=KERNEL,
                    language="python",
                )
            except PapermillExecutionError as e:
                # papermill counts the cells of the executed copy, which has an injected-parameters cell after the
                # parameters cell: map the index back onto the input notebook
                raise PipelineError(
                    f"{nb.name} failed in cell {_input_cell_index(target, e.cell_index)} (0-based cell index in "
                    f"{_show(nb)}, execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
                    f"executed copy with the traceback: {target}\ncell source:\n{e.source}"
                ) from None
            except Exception as e:  # noqa: BLE001 (dead kernel, missing kernel, unreadable notebook ...)
                raise PipelineError(f"{nb.name} could not be executed: {type(e).__name__}: {e}") from e
            tqdm.write(f"stage {stage}: {nb.name} done in {time.time() - t0:.0f} s -> {target}")
            done.append(target)
    return done


def _input_cell_index(executed: Path, index: int) -> int:
    """The index in the input notebook of cell `index` of papermill's executed copy."""
    try:
        import nbformat

        cells = nbformat.read(str(executed), as_version=4).cells
        injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    except Exception:  # noqa: BLE001 (the copy is for reporting only)
        return index
    return index - sum(1 for i in injected if i < index)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stlib.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params/default.yaml", help="params profile (YAML)")
    ap.add_argument("--stages", nargs="*", help=f"subset of {' '.join(STAGES)} (default: all)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        run(args.params, args.stages, quiet=args.quiet)
    except (ConfigError, PipelineError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
