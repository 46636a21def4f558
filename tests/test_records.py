"""Run records: the ledger keeps its text columns as text; env.json says which code ran."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
from conftest import tiny_config

from stlib.reporting import records, results
from stlib.train import fit


def test_ledger_stage_stays_two_digit_text(tmp_path):
    records.append_ledger({"run_id": "a", "stage": "01", "name": "3", "test_mae": 1.0}, tmp_path)
    records.append_ledger({"run_id": "b", "stage": "04", "name": "x", "test_mae": 2.0}, tmp_path)  # rereads a's row
    ledger = results.ledger(tmp_path)
    assert ledger["stage"].tolist() == ["01", "04"] and ledger["name"].tolist() == ["3", "x"]
    assert (ledger.query("stage == '04'")["run_id"] == "b").all()


def test_a_ledger_written_with_integer_stages_reads_back_two_digits(tmp_path):
    pd.DataFrame({"run_id": ["a", "b"], "stage": [1, "scratch"]}).to_csv(tmp_path / "ledger.csv", index=False)
    assert results.ledger(tmp_path)["stage"].tolist() == ["01", "scratch"]
    records.append_ledger({"run_id": "c", "stage": "02"}, tmp_path)
    assert results.ledger(tmp_path)["stage"].tolist() == ["01", "scratch", "02"]


def test_git_state_of_a_repository(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert records.git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    (tmp_path / "b.txt").write_text("untracked files do not make the tree dirty")
    assert records.git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    assert records.git_state(tmp_path) == {"git_commit": head, "git_dirty": True}


def test_git_state_without_a_repository_or_git(tmp_path, monkeypatch):
    assert records.git_state(tmp_path) == {"git_commit": None, "git_dirty": None}  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert records.git_state() == {"git_commit": None, "git_dirty": None}


def test_env_json_names_the_commit(tiny):
    run = fit(tiny_config(model__name="last_value"), dataset=tiny)
    env = json.loads((run.dir / "env.json").read_text())
    assert {"git_commit", "git_dirty"} <= set(env)
    assert env["git_commit"] == records.git_state()["git_commit"]  # this checkout's, or None outside git
    assert env["cpu_model"] == records.cpu_model() and records.run_device(run.dir) == f"CPU ({env['cpu_model']})"


def test_one_device_label_for_records_names_and_devices(tmp_path):
    label = records.device_label
    assert label({"device": "cpu", "device_name": "x86_64", "cpu_model": "AMD EPYC"}) == "CPU (AMD EPYC)"
    # a record from before env.json kept the CPU model: its architecture, as a bare name says it too
    assert label({"device": "cpu", "device_name": "x86_64"}) == label("x86_64") == "CPU (x86_64)"
    assert label({"device": "cuda:0", "device_name": "NVIDIA H200"}) == label("NVIDIA H200") == "NVIDIA H200"
    assert label("cpu") == f"CPU ({records.cpu_model()})" and label({"device": "mps"}) == "Apple GPU (mps)"
    assert label({}) == label(None) == label(float("nan")) == "not recorded" and label({}, missing=None) is None
    assert label(label("x86_64")) == "CPU (x86_64)"  # words stay words
    assert records.run_device(tmp_path) is None  # no env.json

    class Unrecorded:  # a Run without a record names its own device
        dir, device = tmp_path, "cpu"

    assert records.run_device(Unrecorded()) == label("cpu")
