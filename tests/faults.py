"""Fault injection: every way a run can fail must say what happened and lose nothing.

    python tests/faults.py            # every case, about a minute on 2 CPU cores
    python tests/faults.py --fast     # the in-process cases only (no kill -9 subprocesses)
    python tests/faults.py --only nan_loss,full_disk

A test harness, not library code: tests/test_faults.py and tests/test_resume.py run its cases under pytest.

Each case runs a tiny synthetic config in its own temp directory: kill -9 mid-epoch (and mid-write)
then `--resume` and compare with an uninterrupted run, a NaN loss, an fp16 overflow, bad inputs
(corrupt/truncated npz, wrong key or shape, NaN data, unknown sensors, missing files, params typo,
invalid values), an unwritable outputs directory, a full disk and a corrupt checkpoint. A case
holds when the failure is one clear error (non-zero exit), nothing partial is left behind and what
existed before is intact. One line per case, then "N held, M failed"; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

if __name__ == "__main__":  # run as a script: the stlib of this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stlib import train  # noqa: E402
from stlib.config import load_profile  # noqa: E402
from stlib.data import from_config  # noqa: E402
from stlib.paths import REPO_ROOT  # noqa: E402
from stlib.reporting import records  # noqa: E402
from stlib.training import loop  # noqa: E402  (the loop module: where a fault is injected into a step)

# a tiny run that still exercises every piece of state a resume restores: dropout, denoising and
# input noise (random generators), accumulation groups, the plateau schedule and the optimizer
TINY = {
    "stage": "faults",
    "data": {"name": "synthetic", "num_sensors": 6, "num_days": 3},
    "model": {
        "name": "encdec",
        "d_model": 16,
        "n_heads": 2,
        "encoder_depth": 1,
        "decoder_depth": 1,
        "dropout": 0.1,
        "use_denoising": True,
    },
    "train": {
        "epochs": 3,
        "batch_size": 16,
        "accumulation_steps": 2,
        "lr": 0.003,
        "scheduler": "plateau",
        "patience": 1,
        "noise_std": 0.05,
        "threads": 1,
        "quiet": True,
        "save_checkpoint": True,
    },
}
CHECKPOINT_EVERY = 3  # optimizer steps: 16 per epoch of TINY, so a mid-epoch checkpoint every 6 batches
STEP_DELAY = 0.02  # seconds added to each step of a child that gets killed, so the kill lands mid-epoch
TIMING = ("train_seconds", "seconds_per_epoch")  # the only metrics a resume may change
SAME_COLUMNS = ("epoch", "train_loss", "val_mae", "lr", "skipped_steps")  # history columns a resume must keep


# ---------------------------------------------------------------------------------------------
# helpers


def tiny_params(folder: Path, **sections) -> Path:
    """A params file: TINY with some sections' keys replaced (tiny_params(d, train={"epochs": 1})); a section
    that names another dataset or model replaces TINY's (whose options are the synthetic data's, the encdec's)."""
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for name, values in sections.items():
        if "name" in values:
            tree[name] = {}
        tree[name].update(values)
    path = Path(folder) / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@contextlib.contextmanager
def environ(**values):
    """Set environment variables for the block (STLIB_OUTPUT_DIR, STLIB_DATA_DIR ...)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def patched(obj, name: str, value):
    """obj.name = value for the block."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def cli(argv: list, outputs: Path, data: Path | None = None) -> tuple[int, str, str]:
    """python -m stlib.train argv, in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    env = {"STLIB_OUTPUT_DIR": outputs, **({"STLIB_DATA_DIR": data} if data else {})}
    with environ(**env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = train.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def expect_error(code: int, err: str, want_code: int, *words: str) -> str:
    """Check a failed command: its exit code, one 'error:' line holding every word, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == want_code, f"exit code {code}, expected {want_code}; stderr: {err.strip()[-300:]}"
    assert len(lines) == 1 and "Traceback" not in err, f"expected one error line, got: {err.strip()[-300:]}"
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    return lines[0][len("error: ") :]


def short(msg: str, tmp: Path, width: int = 90) -> str:
    """An error message without the temp directory, cut to width."""
    msg = msg.replace(f"{tmp}/", "")
    return msg if len(msg) <= width else msg[: width - 3] + "..."


def temp_files(root: Path) -> list[Path]:
    """Half-written files (records' temp files) anywhere under root."""
    return sorted(Path(root).rglob(f".*{records.TEMP_SUFFIX}")) if Path(root).exists() else []


def run_dirs(outputs: Path) -> list[Path]:
    return sorted(p for p in (Path(outputs) / "runs").glob("*/*") if p.is_dir())


def nothing_left(outputs: Path) -> None:
    """A failure before training: no run directory, no ledger row, no temp file."""
    assert not run_dirs(outputs), f"a run directory was left behind: {run_dirs(outputs)}"
    assert not (Path(outputs) / "ledger.csv").exists(), "a ledger row was written"
    assert not temp_files(outputs), f"temp files left behind: {temp_files(outputs)}"


_REFERENCE: dict[str, Path] = {}


def reference(params: Path, root: Path) -> Path:
    """The run directory of an uninterrupted run of a params file (cached per file content)."""
    text = Path(params).read_text()
    if text not in _REFERENCE or not _REFERENCE[text].exists():
        run = train.fit(load_profile(params).run_config(), out_root=Path(root) / "reference")
        _REFERENCE[text] = run.dir
    return _REFERENCE[text]


def same_results(run_dir: Path, ref_dir: Path) -> None:
    """metrics.json equal but for timing; the history's numbers equal; exactly, not within a tolerance."""
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, ref_dir))
    for k in TIMING:
        a.pop(k), b.pop(k)
    assert a == b, f"metrics differ: test MAE {a['test']['mae']!r} vs {b['test']['mae']!r}"
    ha, hb = (pd.read_csv(d / "history.csv") for d in (run_dir, ref_dir))
    pd.testing.assert_frame_equal(ha[list(SAME_COLUMNS)], hb[list(SAME_COLUMNS)], check_exact=True)


def ledger_rows(outputs: Path, run_id: str) -> int:
    path = Path(outputs) / "ledger.csv"
    return int((pd.read_csv(path)["run_id"] == run_id).sum()) if path.exists() else 0


# ---------------------------------------------------------------------------------------------
# kill -9 and resume (subprocesses)


def child(argv: list) -> int:
    """`python tests/faults.py _child [--step-delay S] [--stall-write K] -- TRAIN ARGS`: stlib.train, slowed.

    --step-delay sleeps before each step (so a kill lands mid-epoch); --stall-write K writes half of the
    K-th last.pt to its temp file and hangs there (so a kill lands mid-write).
    """
    ap = argparse.ArgumentParser(prog="tests/faults.py _child")
    ap.add_argument("--step-delay", type=float, default=0.0)
    ap.add_argument("--stall-write", type=int, default=0)
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    loss, write, writes = loop.compute_loss, records.atomic_write_bytes, [0]

    def slow_loss(*a, **kw):
        time.sleep(args.step_delay)
        return loss(*a, **kw)

    def stalling_write(path, data):
        path = Path(path)
        if path.name == "last.pt":
            writes[0] += 1
            if writes[0] == args.stall_write:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=records.TEMP_SUFFIX)
                os.write(fd, data[: len(data) // 2])
                os.fsync(fd)
                (path.parent / "stalled").touch()
                time.sleep(600)
        write(path, data)

    loop.compute_loss, records.atomic_write_bytes = slow_loss, stalling_write
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return train.main(rest)


def kill_and_resume(tmp: Path, stall_write: int = 0, sig: signal.Signals = signal.SIGKILL) -> str:
    """Start a run in a subprocess, SIGKILL it mid-epoch (or mid-write), resume it, compare with a clean run. With
    sig SIGINT / SIGTERM the run stops itself: exit 130 / 143, one line with the resume command, last.pt written."""
    tmp = Path(tmp)
    params, outputs = tiny_params(tmp), tmp / "outputs"
    env = {**os.environ, "STLIB_OUTPUT_DIR": str(outputs), "PYTHONPATH": str(REPO_ROOT)}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_child",
        "--step-delay",
        str(STEP_DELAY),
        "--stall-write",
        str(stall_write),
        "--",
        "--params",
        str(params),
        "--quiet",
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marker = "stalled" if stall_write else "last.pt"
    deadline = time.time() + 120
    while not any((d / marker).exists() for d in run_dirs(outputs)):
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1].decode()[-500:]}"
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)
    if not stall_write:
        time.sleep(4 * STEP_DELAY)  # a few steps past the checkpoint: the resume must redo them
    os.kill(proc.pid, sig)
    err = proc.communicate()[1].decode()
    (run_dir,) = run_dirs(outputs)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, f"exit code {proc.returncode}"
    else:  # one line: where it stopped, and the command that continues it
        assert proc.returncode == 128 + sig, f"exit code {proc.returncode}: {err[-500:]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"python -m stlib.train --resume {run_dir}" in lines[0], err[-500:]
        assert lines[0].startswith(f"error: {sig.name}: training stopped at epoch 1, after batch "), lines[0]
    (run_dir / "stalled").unlink(missing_ok=True)
    half = temp_files(run_dir)
    assert bool(half) == bool(stall_write), f"temp files after the kill: {half}"
    progress = records.load_torch(run_dir / "last.pt")["progress"]  # the previous checkpoint is intact
    where = f"epoch {progress['epoch']} after batch {progress['batch']}"
    assert progress["batch"] > 0 and not (run_dir / "metrics.json").exists(), f"not killed mid-epoch: {where}"

    resumed = subprocess.run(
        [sys.executable, "-m", "stlib.train", "--resume", str(run_dir), "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, f"resume failed: {resumed.stderr[-500:]}"
    same_results(run_dir, reference(params, tmp))
    assert ledger_rows(outputs, run_dir.name) == 1, "the resumed run is not exactly one ledger row"
    assert not temp_files(run_dir), f"temp files after the resume: {temp_files(run_dir)}"
    kill = "killed while writing last.pt (half a temp file)" if stall_write else "killed"
    kill = kill if sig == signal.SIGKILL else f"{sig.name}: stopped with one line, exit {128 + sig}"
    return f"{kill}, resumed from {where}: metrics and history identical"


# ---------------------------------------------------------------------------------------------
# the cases: name -> (what, function(tmp) -> detail, fast)

CASES: dict[str, tuple] = {}


def case(name: str, what: str, fast: bool = True):
    def register(fn):
        CASES[name] = (what, fn, fast)
        return fn

    return register


@case("kill_mid_epoch", "kill -9 mid-epoch, then --resume", fast=False)
def _kill_mid_epoch(tmp: Path) -> str:
    return kill_and_resume(tmp)


@case("ctrl_c", "Ctrl-C (SIGINT) mid-epoch, then --resume", fast=False)
def _ctrl_c(tmp: Path) -> str:
    return kill_and_resume(tmp, sig=signal.SIGINT)


@case("sigterm", "SIGTERM mid-epoch, then --resume", fast=False)
def _sigterm(tmp: Path) -> str:
    return kill_and_resume(tmp, sig=signal.SIGTERM)


@case("kill_mid_write", "kill -9 while last.pt is being written, then --resume", fast=False)
def _kill_mid_write(tmp: Path) -> str:
    return kill_and_resume(tmp, stall_write=3)


@case("nan_loss", "NaN loss in epoch 2")
def _nan_loss(tmp: Path) -> str:
    params, outputs = tiny_params(tmp), tmp / "outputs"
    calls, loss = [0], loop.compute_loss

    def nan_on_call_40(*a, **kw):  # epoch 2 (32 batches per epoch), batch 8
        calls[0] += 1
        out = loss(*a, **kw)
        return out * float("nan") if calls[0] == 40 else out

    with patched(loop, "compute_loss", nan_on_call_40):
        code, _, err = cli(["--params", params, "--checkpoint-every", CHECKPOINT_EVERY], outputs)
    msg = expect_error(code, err, 3, "non-finite loss", "epoch 2, step 7", "last.pt")
    (run_dir,) = run_dirs(outputs)
    hist = pd.read_csv(run_dir / "history.csv")
    best = records.load_torch(run_dir / "best.pt")
    last = records.load_torch(run_dir / "last.pt")["progress"]
    assert len(hist) == 1 and best["epoch"] == 1, "history / best.pt of epoch 1 not kept"
    assert (last["epoch"], last["batch"]) == (2, 4), f"last good checkpoint at {last['epoch']}, {last['batch']}"
    assert not (run_dir / "metrics.json").exists() and ledger_rows(outputs, run_dir.name) == 0
    assert not temp_files(outputs)
    return f"exit 3 ({short(msg, tmp)[:48]}...); history, best.pt, last.pt (epoch 2 batch 4) kept"


@case("fp16_overflow", "fp16 overflow (inf gradients) under GradScaler")
def _fp16_overflow(tmp: Path) -> str:
    fast = {"amp": "fp16", "epochs": 2, "batch_size": 32, "accumulation_steps": 1, "save_checkpoint": False}
    cfg = load_profile(tiny_params(tmp, train=fast)).run_config()
    ds = from_config(cfg.data)
    plain = train.fit(cfg, dataset=ds, out_root=tmp / "plain")
    build, calls = loop.build_model, [0]

    def inf_grads_at_steps_5_and_20(*a, **kw):  # 16 steps per epoch: step 5 of epoch 1, step 4 of epoch 2
        model = build(*a, **kw)

        def hook(grad):
            calls[0] += 1
            return grad * float("inf") if calls[0] in (5, 20) else grad

        next(model.parameters()).register_hook(hook)
        return model

    with patched(loop, "build_model", inf_grads_at_steps_5_and_20):
        run = train.fit(cfg, dataset=ds, out_root=tmp / "overflow")
    base, got = plain.history["skipped_steps"].tolist(), run.history["skipped_steps"].tolist()
    assert got == [base[0] + 1, base[1] + 1], f"skipped steps per epoch {got}, expected {base} + [1, 1]"
    assert run.metrics["skipped_steps"] == sum(base) + 2 and np.isfinite(run.metrics["test"]["mae"])
    return f"2 injected overflows counted: skipped_steps per epoch {got} (without injection {base})"


def _file_case(
    tmp: Path, series=None, key="data", raw: bytes | None = None, edges: str | None = None, name="flow.npz"
) -> tuple[int, str, Path]:
    """Train on a file dataset made broken in one way; (exit code, stderr, outputs)."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        np.savez(path, **{key: np.random.default_rng(0).uniform(1, 100, (300, 4)) if series is None else series})
    opts = {"name": "file", "path": str(path)}
    if edges is not None:
        (data / "edges.csv").write_text(edges)
        opts["edges"] = str(data / "edges.csv")
    outputs = tmp / "outputs"
    code, _, err = cli(["--params", tiny_params(tmp, data=opts)], outputs)
    return code, err, outputs


def _bad_input(tmp: Path, *words, **kw) -> str:
    code, err, outputs = _file_case(tmp, **kw)
    msg = expect_error(code, err, 2, *words)
    nothing_left(outputs)
    return f"exit 2: {short(msg, tmp)}"


def _npz_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, data=arr)
    return buf.getvalue()


@case("corrupt_npz", "corrupt npz")
def _corrupt(tmp):
    return _bad_input(tmp, "corrupt or truncated", raw=b"PK\x03\x04" + bytes(range(256)) * 4)


@case("truncated_npz", "truncated npz (half downloaded)")
def _truncated(tmp):
    whole = _npz_bytes(np.ones((300, 4)))
    return _bad_input(tmp, "corrupt or truncated", raw=whole[: len(whole) // 2])


@case("wrong_key", "npz without the expected array name")
def _wrong_key(tmp):
    return _bad_input(tmp, "no array named 'data'", "found: flow", key="flow")


@case("wrong_shape", "array of the wrong shape (rank 1)")
def _wrong_shape(tmp):
    return _bad_input(tmp, "expected shape (T, N)", series=np.ones(300))


@case("nan_data", "non-finite values in the data (inf; a NaN is a missing reading, masked)")
def _nan_data(tmp):
    series = np.random.default_rng(0).uniform(1, 100, (300, 4))
    series[17, 2] = np.inf
    return _bad_input(tmp, "infinite value", "step 17, sensor 2", series=series)


@case("negative_data", "negative values in the data")
def _negative_data(tmp):
    series = np.random.default_rng(0).uniform(1, 100, (300, 4))
    series[40, 1] = -5.0
    return _bad_input(tmp, "negative value -5", "step 40, sensor 1", series=series)


@case("unknown_sensors", "distance CSV naming unknown sensors")
def _unknown_sensors(tmp):
    return _bad_input(tmp, "sensor ids out of range", "[9]", edges="from,to,cost\n0,1,1.5\n2,9,3.0\n")


@case("missing_files", "dataset files missing (PEMS08 not downloaded)")
def _missing_files(tmp):
    outputs, empty = tmp / "outputs", tmp / "empty-data"
    empty.mkdir(parents=True)
    code, _, err = cli(["--params", tiny_params(tmp, data={"name": "PEMS08"})], outputs, data=empty)
    msg = expect_error(code, err, 2, "missing file", "download PEMS08")
    nothing_left(outputs)
    return f"exit 2: {short(msg, tmp)}"


def _bad_config(tmp: Path, argv: list, *words) -> str:
    outputs = tmp / "outputs"
    code, _, err = cli(["--params", tiny_params(tmp), *argv], outputs)
    msg = expect_error(code, err, 2, *words)
    nothing_left(outputs)
    return f"exit 2: {short(msg, tmp)}"


@case("params_typo", "params typo (train.lrr, model.d_modle)")
def _typo(tmp):
    _bad_config(tmp, ["--set", "train.lrr=0.1"], "did you mean 'train.lr'")
    outputs, params = tmp / "outputs", tiny_params(tmp)
    params.write_text(params.read_text().replace("d_model:", "d_modle:"))
    code, _, err = cli(["--params", params], outputs)
    msg = expect_error(code, err, 2, "unknown key 'd_modle'", "did you mean 'd_model'")
    nothing_left(outputs)
    return f"exit 2 each: {short(msg, tmp)}"


@case("negative_lr", "invalid value: negative lr")
def _negative_lr(tmp):
    return _bad_config(tmp, ["--set", "train.lr=-0.001"], "train.lr must be > 0")


@case("batch_zero", "invalid value: batch size 0")
def _batch_zero(tmp):
    return _bad_config(tmp, ["--set", "train.batch_size=0"], "train.batch_size must be >= 1")


@case("accumulation_zero", "invalid value: accumulation 0")
def _accumulation_zero(tmp):
    return _bad_config(tmp, ["--set", "train.accumulation_steps=0"], "train.accumulation_steps must be >= 1")


@case("unwritable_outputs", "outputs directory not writable")
def _unwritable(tmp):
    blocker = tmp / "blocker"
    blocker.write_text("a file where the outputs directory should be")
    code, _, err = cli(["--params", tiny_params(tmp)], blocker / "outputs")
    msg = expect_error(code, err, 4, "cannot create the run directory")
    assert blocker.read_text().startswith("a file"), "the blocking file was changed"
    done = "a file in the way"
    if os.geteuid() != 0:  # root writes through permissions: only a non-root user can check read-only
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            code, _, err = cli(["--params", tiny_params(tmp)], locked)
            expect_error(code, err, 4, "cannot create the run directory")
            done += " and a read-only directory"
        finally:
            locked.chmod(0o755)
    return f"exit 4 ({done}): {short(msg, tmp)}"


@case("full_disk", "disk full while checkpointing, then --resume")
def _full_disk(tmp: Path) -> str:
    params, outputs = tiny_params(tmp), tmp / "outputs"
    save, fsync, full = records.save_torch, os.fsync, [False]

    def save_then_fill(path, obj):  # the disk fills up right after the second last.pt
        save(path, obj)
        full[0] = full[0] or (Path(path).name == "last.pt" and (Path(path).parent / "history.csv").exists())

    def no_space(fd):
        if full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)

    with patched(records, "save_torch", save_then_fill), patched(os, "fsync", no_space):
        code, _, err = cli(["--params", params, "--checkpoint-every", CHECKPOINT_EVERY], outputs)
    msg = expect_error(code, err, 4, "the disk is full", "previous version is intact")
    (run_dir,) = run_dirs(outputs)
    assert not temp_files(outputs), f"temp files left behind: {temp_files(outputs)}"
    progress = records.load_torch(run_dir / "last.pt")["progress"]
    assert len(pd.read_csv(run_dir / "history.csv")) == 1 and not (run_dir / "metrics.json").exists()
    with environ(STLIB_OUTPUT_DIR=outputs):  # space freed: the run continues from its intact checkpoint
        train.fit(resume=run_dir)
    same_results(run_dir, reference(params, tmp))
    assert ledger_rows(outputs, run_dir.name) == 1
    return (
        f"exit 4 ({short(msg, tmp, 60)}), last.pt intact at epoch {progress['epoch']} batch "
        f"{progress['batch']}; resumed: identical metrics"
    )


@case("corrupt_checkpoint", "--resume with a truncated last.pt or a wrong directory")
def _corrupt_checkpoint(tmp: Path) -> str:
    outputs = tmp / "outputs"
    code, _, err = cli(["--params", tiny_params(tmp, train={"epochs": 1}), "--checkpoint-every", 0], outputs)
    assert code == 0, err
    (run_dir,) = run_dirs(outputs)
    last = run_dir / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    code, _, err = cli(["--resume", run_dir], outputs)
    msg = expect_error(code, err, 2, "unreadable", "last.pt")
    code, _, err = cli(["--resume", tmp / "nowhere"], outputs)
    expect_error(code, err, 2, "cannot resume", "does not exist")
    assert ledger_rows(outputs, run_dir.name) == 1, "the ledger row changed"
    return f"exit 2 each: {short(msg, tmp)}"


@case("resume_live_run", "--resume of a run another process is still training")
def _resume_live_run(tmp: Path) -> str:
    outputs = tmp / "outputs"
    code, _, err = cli(["--params", tiny_params(tmp, train={"epochs": 1})], outputs)
    assert code == 0, err
    (run_dir,) = run_dirs(outputs)
    before = (run_dir / "last.pt").read_bytes()
    with records.run_lock(run_dir):  # stands in for the live process
        code, _, err = cli(["--resume", run_dir], outputs)
    msg = expect_error(code, err, 2, "in use by another process")
    assert (run_dir / "last.pt").read_bytes() == before and ledger_rows(outputs, run_dir.name) == 1
    return f"exit 2: {short(msg, tmp)}"


# ---------------------------------------------------------------------------------------------
# command line


def run_cases(names, stream=None) -> tuple[int, int]:
    """Run the named cases, one line each; (held, failed)."""
    stream, held, failed = stream or sys.stdout, 0, 0
    width = max(len(n) for n in names)
    with tempfile.TemporaryDirectory(prefix="stlib-faults-") as root:
        for name in names:
            what, fn, _ = CASES[name]
            tmp = Path(root) / name
            tmp.mkdir()
            t0 = time.perf_counter()
            try:
                detail, ok = fn(tmp), True
            except Exception as e:  # a case fails by an assertion or by any unexpected error
                detail, ok = f"{type(e).__name__}: {e}".replace("\n", " ")[:400], False
            held, failed = held + ok, failed + (not ok)
            print(
                f"{'held' if ok else 'FAILED':6s} {name:{width}s} {time.perf_counter() - t0:5.1f}s  {what}: {detail}",
                file=stream,
                flush=True,
            )
    print(f"{held + failed} cases tried: {held} held, {failed} failed", file=stream, flush=True)
    return held, failed


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_child"]:
        return child(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python tests/faults.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fast", action="store_true", help="skip the cases that kill subprocesses")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, (what, _, fast) in CASES.items():
            print(f"{name:20s} {what}{'' if fast else '  (subprocess)'}")
        return 0
    names = [n for n, (_, _, fast) in CASES.items() if fast or not args.fast]
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in CASES]
        if unknown:
            print(f"error: unknown case(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
    _, failed = run_cases(names)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
