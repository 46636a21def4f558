"""Tests for stlib.pipeline on tiny notebooks written into a temp folder (two kernel start-ups in all)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from stlib import pipeline
from stlib.config import ConfigError, load_profile
from stlib.pipeline import STAGES, PipelineError, plan, run


def make_notebook(path: Path, *cells: str, params: str = 'params_file = "x"') -> Path:
    """A notebook: a markdown title, a `parameters`-tagged cell, then the given code cells."""
    nb = nbformat.v4.new_notebook()
    pcell = nbformat.v4.new_code_cell(params)
    pcell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), pcell, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(path))
    return path


def make_params(tmp_path: Path, notebooks: str = "", name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"profile: {name}\n" + (f"notebooks:\n{notebooks}" if notebooks else ""))
    return path


@pytest.fixture
def nbdir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", d)
    monkeypatch.setenv("STLIB_OUTPUT_DIR", str(tmp_path / "outputs"))
    return d


# ---------------------------------------------------------------------------------------------
# plan (no kernel)


def test_plan_skips_missing_notebooks_with_a_message(tmp_path, nbdir):
    make_notebook(nbdir / f"{STAGES['00']}.ipynb", params='params_file = "x"\nseeds = [0]')
    params = make_params(tmp_path, '  "00": {seeds: [1, 2]}\n')
    jobs, skipped = plan(load_profile(params), notebook_dir=nbdir)
    assert [(s, nb.name) for s, nb, _ in jobs] == [("00", "00_data.ipynb")]
    assert jobs[0][2] == {"params_file": str(params.resolve()), "seeds": [1, 2]}
    assert len(skipped) == len(STAGES) - 1
    assert all("does not exist" in m and "skipped" in m for m in skipped)
    assert any(m.startswith("stage 01:") and "01_baseline.ipynb" in m for m in skipped)


def test_plan_selected_stages_in_order(tmp_path, nbdir):
    make_notebook(nbdir / f"{STAGES['00']}.ipynb")
    make_notebook(nbdir / f"{STAGES['01']}.ipynb")
    profile = load_profile(make_params(tmp_path))
    jobs, skipped = plan(profile, stages=["01", "00"], notebook_dir=nbdir)
    assert [s for s, _, _ in jobs] == ["01", "00"] and skipped == []
    jobs, _ = plan(profile, stages=["1"], notebook_dir=nbdir)  # "1" means "01"
    assert [s for s, _, _ in jobs] == ["01"]


def test_plan_uses_monkeypatched_notebook_dir_by_default(tmp_path, nbdir):
    make_notebook(nbdir / f"{STAGES['00']}.ipynb")
    jobs, skipped = plan(load_profile(make_params(tmp_path)))
    assert [nb for _, nb, _ in jobs] == [nbdir / "00_data.ipynb"]
    assert all(str(nbdir) in m for m in skipped)


def test_plan_rejects_unknown_stage(tmp_path, nbdir):
    with pytest.raises(ConfigError, match=r"unknown stage\(s\) 07.*stages are 00, 01"):
        plan(load_profile(make_params(tmp_path)), stages=["07"], notebook_dir=nbdir)


def test_plan_rejects_unknown_stage_in_notebooks_section(tmp_path, nbdir):
    params = make_params(tmp_path, '  "09": {seeds: [0]}\n')
    with pytest.raises(ConfigError, match=r"notebooks: unknown stage\(s\) 09") as e:
        plan(load_profile(params), notebook_dir=nbdir)
    assert str(params) in str(e.value)


def test_plan_rejects_undeclared_parameter_and_suggests(tmp_path, nbdir):
    make_notebook(nbdir / "00_data.ipynb", params='params_file = "x"\nseeds = [0]')
    params = make_params(tmp_path, '  "00": {seed: [1]}\n')
    with pytest.raises(ConfigError) as e:
        plan(load_profile(params), notebook_dir=nbdir)
    msg = str(e.value)
    assert "notebooks.00.seed is not a parameter of 00_data.ipynb" in msg
    assert "did you mean 'seeds'" in msg
    # no close match: the declared parameters are listed
    params = make_params(tmp_path, '  "00": {zzz: 1}\n')
    with pytest.raises(ConfigError, match=r"notebooks\.00\.zzz.*it declares: params_file, seeds"):
        plan(load_profile(params), notebook_dir=nbdir)


def test_plan_needs_params_file_in_parameters_cell(tmp_path, nbdir):
    make_notebook(nbdir / "00_data.ipynb", params="seeds = [0]")
    with pytest.raises(ConfigError, match=r"00_data\.ipynb.*must declare params_file.*seeds"):
        plan(load_profile(make_params(tmp_path)), notebook_dir=nbdir)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('params_file = "x"')]  # not tagged
    nbformat.write(nb, str(nbdir / "00_data.ipynb"))
    with pytest.raises(ConfigError, match=r"00_data\.ipynb has no cell tagged 'parameters'"):
        plan(load_profile(make_params(tmp_path)), notebook_dir=nbdir)


def test_plan_of_the_real_notebooks_for_every_profile():
    from stlib.paths import REPO_ROOT

    for path in sorted((REPO_ROOT / "params").glob("*.yaml")):
        jobs, skipped = plan(load_profile(path))
        assert len(jobs) + len(skipped) == len(STAGES)
        assert all(p["params_file"] == str(path.resolve()) for _, _, p in jobs)


def test_every_parameter_line_of_the_real_notebooks_parses():
    """papermill silently drops a parameter line it cannot parse (an '=' in a comment, for one)."""
    import re

    from stlib.paths import REPO_ROOT

    for nb in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        node = nbformat.read(str(nb), as_version=4)
        cell = next(c for c in node.cells if "parameters" in c.metadata.get("tags", []))
        names = re.findall(r"^(\w+)\s*=", cell.source, flags=re.M)
        assert list(pipeline.notebook_parameters(nb)) == names, nb.name


def test_parameters_cells_equal_the_default_profile():
    """One source of truth: a notebook opened in JupyterLab runs with what make run passes it (params/default.yaml)."""
    assert pipeline.parameter_drift("params/default.yaml") == []


def test_parameter_drift_names_the_notebook_and_both_values(tmp_path, nbdir):
    make_notebook(nbdir / "03_stage1_tuning.ipynb", params='params_file = "params/x.yaml"\nseeds = (0, 1)\njobs = 1')
    params = make_params(tmp_path, '  "03": {seeds: [0, 1], jobs: 2}\n', name="x")
    (tmp_path / "params").mkdir()
    target = tmp_path / "params" / "x.yaml"
    params.rename(target)
    drift = pipeline.parameter_drift(str(target), notebook_dir=nbdir)
    assert len(drift) == 2  # params_file as written here, and jobs; the tuple (0, 1) equals the list [0, 1]
    assert drift[0].startswith("03_stage1_tuning.ipynb: params_file = 'params/x.yaml'")
    assert drift[1] == f"03_stage1_tuning.ipynb: jobs = 1 in its parameters cell, 2 from {target}"
    make_notebook(nbdir / "03_stage1_tuning.ipynb", params=f'params_file = "{target}"\nseeds = [0, 1]\njobs = 2')
    assert pipeline.parameter_drift(str(target), notebook_dir=nbdir) == []
    params = make_params(tmp_path, '  "03": {seeds: [0, 1], jobs: 2, depth: [1, 2]}\n', name="y")
    make_notebook(nbdir / "03_stage1_tuning.ipynb", params=f'params_file = "{params}"\nseeds = [0, 1]\njobs = 2')
    assert pipeline.parameter_drift(str(params), notebook_dir=nbdir) == [
        f"03_stage1_tuning.ipynb: depth is set by {params} but not declared in its parameters cell"
    ]


def test_notebooks_write_to_an_interactive_folder_unless_the_pipeline_runs_them(tmp_path, monkeypatch):
    from stlib import nb

    monkeypatch.setenv("STLIB_OUTPUT_DIR", str(tmp_path))
    monkeypatch.delenv(nb.BATCH_ENV, raising=False)
    ctx = nb.setup("params/default.yaml", "00")
    assert ctx.out == tmp_path / "default-interactive" and ctx.figures.is_dir()
    monkeypatch.setenv(nb.BATCH_ENV, "1")
    assert nb.setup("params/default.yaml", "00").out == tmp_path / "default"


def test_run_checks_everything_before_executing(tmp_path, nbdir):
    make_notebook(nbdir / "00_data.ipynb", "raise SystemExit('must not run')")
    params = make_params(tmp_path, '  "00": {nope: 1}\n')
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="nope"):
        run(str(params), notebook_dir=nbdir, out_dir=out, quiet=True)
    assert not out.exists()


def test_main_reports_errors(tmp_path, nbdir, capsys):
    assert pipeline.main(["--params", str(tmp_path / "missing.yaml"), "--quiet"]) == 1
    assert "params file not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# run (each starts a kernel)


@pytest.mark.slow
def test_run_executes_notebook_with_parameters(tmp_path, nbdir, capsys):
    make_notebook(
        nbdir / "00_data.ipynb",
        "import os, pathlib\n"
        "pathlib.Path(os.environ['STLIB_OUTPUT_DIR'], 'marker.txt').write_text("
        "f'{params_file}|{seeds}|{os.getcwd()}|{os.environ.get(\"STLIB_BATCH\")}')",
        params='params_file = "x"\nseeds = [0]',
    )
    params = make_params(tmp_path, '  "00": {seeds: [3, 4]}\n')
    done = run(str(params), stages=["00"], quiet=True)  # NOTEBOOK_DIR monkeypatched, out from $STLIB_OUTPUT_DIR
    out = tmp_path / "outputs" / "tiny"  # $STLIB_OUTPUT_DIR/<profile>
    assert done == [out / "00_data.ipynb"]
    executed = nbformat.read(str(done[0]), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "seeds = [3, 4]" in injected[0].source
    params_file, seeds, cwd, batch = (tmp_path / "outputs" / "marker.txt").read_text().split("|")
    assert params_file == str(params.resolve()) and seeds == "[3, 4]"
    assert Path(cwd) == pipeline.REPO_ROOT
    assert batch == "1"  # the kernel knows it runs in a batch (stlib.nb writes to outputs/<profile>/)
    assert "STLIB_BATCH" not in os.environ  # and only while the pipeline runs
    assert "stage 00" in capsys.readouterr().out


@pytest.mark.slow
def test_run_failing_cell_raises_pipeline_error(tmp_path, nbdir):
    make_notebook(nbdir / "00_data.ipynb", "x = 1", "raise ValueError('boom in the tiny notebook')", "y = 2")
    out = tmp_path / "out"
    with pytest.raises(PipelineError) as e:
        run(str(make_params(tmp_path)), stages=["00"], notebook_dir=nbdir, out_dir=out, quiet=True)
    msg = str(e.value)
    assert "00_data.ipynb failed in cell 3" in msg  # md 0, parameters 1, x = 1 2, raise 3 (input notebook)
    assert "ValueError: boom in the tiny notebook" in msg
    assert "raise ValueError('boom in the tiny notebook')" in msg  # the cell's source
    assert str(out / "00_data.ipynb") in msg and (out / "00_data.ipynb").exists()
