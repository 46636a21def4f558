"""Run the numbered stage notebooks with papermill for one params profile.

    python -m stlib.pipeline --params params/default.yaml [--stages 00 01 ...]

Executed copies go to outputs/<profile>/NN_name.ipynb. Each notebook gets `params_file` plus the
parameters listed for its stage under `notebooks:` in the params file (checked against the
notebook's `parameters` cell before anything runs).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from .config import ConfigError, load_profile
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


def plan(profile, stages=None, notebook_dir: Path = NOTEBOOK_DIR):
    """[(stage, input notebook, parameters)] for the stages that exist; messages for the ones that don't."""
    import papermill as pm

    wanted = stages or list(STAGES)
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    extra = set(profile.notebooks) - set(STAGES)
    if extra:
        raise ConfigError(f"{profile.path}: notebooks: unknown stage(s) {sorted(extra)}; stages are {', '.join(STAGES)}")
    jobs, skipped = [], []
    for stage in wanted:
        nb = notebook_dir / f"{STAGES[stage]}.ipynb"
        if not nb.exists():
            skipped.append(f"stage {stage}: {nb.relative_to(REPO_ROOT) if nb.is_relative_to(REPO_ROOT) else nb} "
                           "does not exist yet, skipped")
            continue
        params = {"params_file": str(profile.path.resolve()), **profile.notebooks.get(stage, {})}
        declared = pm.inspect_notebook(str(nb))
        for key in params:
            if key not in declared:
                hint = difflib.get_close_matches(key, list(declared), n=1)
                raise ConfigError(f"{profile.path}: notebooks.{stage}.{key} is not a parameter of {nb.name}"
                                  + (f" (did you mean '{hint[0]}'?)" if hint else f" (it has: {', '.join(declared)})"))
        jobs.append((stage, nb, params))
    return jobs, skipped


def run(params_path: str, stages=None, out_dir: Path | None = None, notebook_dir: Path = NOTEBOOK_DIR,
        quiet: bool = False) -> list[Path]:
    """Execute the stage notebooks in order; return the executed copies' paths."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    profile = load_profile(resolve_params(params_path))
    out = out_dir or output_dir() / profile.name
    out.mkdir(parents=True, exist_ok=True)
    jobs, skipped = plan(profile, stages, notebook_dir)
    for msg in skipped:
        print(msg)
    done = []
    bar = tqdm(jobs, desc=f"profile {profile.name}", unit="notebook", disable=quiet)
    for stage, nb, params in bar:
        bar.set_postfix_str(nb.name)
        target = out / nb.name
        t0 = time.time()
        try:
            pm.execute_notebook(str(nb), str(target), parameters=params, cwd=str(REPO_ROOT),
                                progress_bar=False, kernel_name="python3")
        except PapermillExecutionError as e:
            raise PipelineError(
                f"{nb.name} failed in cell {e.cell_index} (execution {e.exec_count}): {e.ename}: {e.evalue}\n"
                f"executed copy with the traceback: {target}\ncell source:\n{e.source}") from None
        tqdm.write(f"stage {stage}: {nb.name} done in {time.time() - t0:.0f} s -> {target}")
        done.append(target)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stlib.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
