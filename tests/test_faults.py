"""The fault-injection script: each in-process case holds; the script counts and reports."""

from __future__ import annotations

import faults
import pytest

FAST = [name for name, (_, _, fast) in faults.CASES.items() if fast]  # the kill -9 cases: tests/test_resume.py


@pytest.mark.parametrize("name", FAST)
def test_fault_case_holds(name, tmp_path):
    """NaN loss, fp16 overflow counting, every bad input, unwritable outputs, full disk, corrupt checkpoint."""
    _, case, _ = faults.CASES[name]
    assert case(tmp_path)  # raises AssertionError naming what did not hold


def test_script_prints_one_line_per_case_and_the_counts(capsys, monkeypatch):
    assert faults.main(["--only", "negative_lr,batch_zero"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines[:2]] == [["held", "negative_lr"], ["held", "batch_zero"]]
    assert lines[-1] == "2 cases tried: 2 held, 0 failed"

    def broken(tmp):
        raise AssertionError("a temp file was left behind")

    monkeypatch.setitem(faults.CASES, "broken", ("a case that fails", broken, True))
    assert faults.main(["--only", "broken,batch_zero"]) == 1
    out = capsys.readouterr().out
    assert "FAILED broken" in out and "a temp file was left behind" in out
    assert out.splitlines()[-1] == "2 cases tried: 1 held, 1 failed"
    assert faults.main(["--only", "nope"]) == 2


def test_every_case_of_the_issue_is_covered():
    assert {
        "kill_mid_epoch",
        "nan_loss",
        "fp16_overflow",
        "corrupt_npz",
        "truncated_npz",
        "wrong_key",
        "wrong_shape",
        "nan_data",
        "unknown_sensors",
        "missing_files",
        "params_typo",
        "negative_lr",
        "batch_zero",
        "accumulation_zero",
        "unwritable_outputs",
        "full_disk",
    } <= set(faults.CASES)
