"""Run records: outputs/runs/<stage>/<run-id>/ (config.yaml, history.csv, metrics.json, env.json, best.pt, last.pt,
tensorboard/) and outputs/ledger.csv, every file written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import platform
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from ..paths import REPO_ROOT, output_dir

LEDGER_COLUMNS = ["run_id", "stage", "name", "profile", "model", "dataset", "seed", "params", "best_epoch"]
LEDGER_COLUMNS += ["epochs_run", "train_seconds", "seconds_per_epoch", "val_mae", "test_mae", "test_rmse", "test_mape"]
LEDGER_COLUMNS += ["mae_h3", "mae_h6", "mae_h12", "device", "finished", "run_dir"]
# read as text, not guessed: stage "01" would become the integer 1, a run named "3" the number 3
LEDGER_TEXT = ("run_id", "stage", "name", "profile", "model", "dataset", "device", "finished", "run_dir")


TEMP_SUFFIX = ".tmp"
UMASK = os.umask(0o022)  # read the process umask (it can only be read by setting it) ...
os.umask(UMASK)  # ... and put it back: written files get the usual 0o666 & ~umask, not mkstemp's 0o600


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path via a temp file + fsync + rename; on failure nothing is left behind."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o666 & ~UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    _fsync_dir(path.parent)  # make the rename itself durable


def _write_error(path: Path, e: OSError) -> OSError:
    """An OSError (same type and errno) naming the file and saying the previous version is intact."""
    why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
    err = type(e)(f"cannot write {path}: {why} (nothing was changed: any previous version is intact)")
    err.errno = e.errno  # str(err) is the message alone, the errno still tells the cause
    return err


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory: the rename still happened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files a killed write left in folder (.<name>.<random>.tmp); return them."""
    left = [p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in left:
        p.unlink(missing_ok=True)
    return left


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def save_torch(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch(path: Path, map_location="cpu"):
    """A checkpoint written by save_torch (plain tensors and Python values only); clear error if unreadable."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # zip / unpickling errors of a truncated or foreign file
        raise ValueError(f"checkpoint {path} is unreadable (corrupt or truncated?): {e}") from None


def read_run(run_dir: str | Path) -> dict:
    """One finished run directory -> {'dir', 'config', 'metrics', 'history', 'env'}."""
    d = Path(run_dir)
    if not (d / "metrics.json").exists():
        raise FileNotFoundError(f"{d} has no metrics.json (unfinished or not a run directory)")
    env = json.loads((d / "env.json").read_text()) if (d / "env.json").exists() else {}
    config, metrics = yaml.safe_load((d / "config.yaml").read_text()), json.loads((d / "metrics.json").read_text())
    return {"dir": d, "config": config, "metrics": metrics, "history": pd.read_csv(d / "history.csv"), "env": env}


def git_state(repo: Path = REPO_ROOT) -> dict:
    """{'git_commit': HEAD's hash, 'git_dirty': tracked files changed since}; None for both without git or a repo."""

    def git(*args):
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):  # no git, not a repository, no commit yet, a hung git
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def cpu_model() -> str:
    """This machine's CPU model ('AMD EPYC 7B13'), from /proc/cpuinfo, else platform's processor or architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: torch.device) -> dict:
    """What ran the run: the code's git commit (and whether the tree had changes), versions, device, threads."""
    processor = platform.processor() or platform.machine()
    env = {**git_state(), "torch": torch.__version__, "python": platform.python_version()}
    env |= {"platform": platform.platform(), "processor": processor, "cpu_model": cpu_model(), "device": str(device)}
    env |= {"device_name": processor, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


NOT_RECORDED = "not recorded"
ARCHITECTURES = {"x86_64", "amd64", "aarch64", "arm64", "i386", "i686", "ppc64le", "s390x"}


def device_label(device=None, missing: str | None = NOT_RECORDED) -> str | None:
    """A device in words, the one place that says it: a GPU's name as is; 'cpu' (this machine) as 'CPU (its model)';
    an architecture ('x86_64', how older records name a CPU) as 'CPU (x86_64)'; 'mps' as 'Apple GPU (mps)'; an
    env.json dict as the device it names (a CPU by its recorded model); `missing` when nothing names one."""
    if isinstance(device, dict):  # env.json
        kind = str(device.get("device") or "").split(":")[0].strip().lower()
        if kind == "cpu":
            model = device.get("cpu_model") or device.get("device_name") or device.get("processor")
            return f"CPU ({model or 'model not recorded'})"
        device = "mps" if kind == "mps" else device.get("device_name") or device.get("device")
    if device is None or (isinstance(device, float) and device != device) or not str(device).strip():
        return missing
    kind = getattr(device, "type", None) or str(device).split(":")[0].strip().lower()
    if kind == "cpu":
        return f"CPU ({cpu_model()})"
    if kind == "cuda":
        try:
            return torch.cuda.get_device_name(torch.device(str(device)))
        except (RuntimeError, AssertionError):
            return "CUDA GPU"
    if kind == "mps":
        return "Apple GPU (mps)"
    text = str(device).strip()
    return f"CPU ({text})" if text.lower() in ARCHITECTURES else text


def run_device(run) -> str | None:
    """The device a run (a run directory or a Run) trained on, in words: its env.json, else the Run's `device`."""
    folder = run if isinstance(run, (str, Path)) else getattr(run, "dir", None)
    if folder is not None and (Path(folder) / "env.json").exists():
        return device_label(json.loads((Path(folder) / "env.json").read_text()), missing=None)
    return device_label(getattr(run, "device", None), missing=None)


def joined(values) -> str | None:
    """The distinct non-empty values of a column, as one label ('a, b'); None when there are none."""
    seen = [str(v) for v in dict.fromkeys(values) if v is not None and not (isinstance(v, float) and v != v)]
    return ", ".join(seen) or None


def new_run_dir(stage: str, label: str, root: Path | None = None) -> tuple[str, Path]:
    """A fresh, unique outputs/runs/<stage>/<run-id>/ directory."""
    base = (root or output_dir()) / "runs" / stage
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the run directory under {base}: {e.strerror}") from None
    if not os.access(base, os.W_OK):
        raise PermissionError(f"outputs directory {base} is not writable (set STLIB_OUTPUT_DIR to a writable place)")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{secrets.token_hex(2)}"
    (base / run_id).mkdir()
    return run_id, base / run_id


def write_config(path: Path, cfg_dict: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg_dict, sort_keys=False))


@contextlib.contextmanager
def file_lock(path: Path, busy: str | None = None):
    """Hold an exclusive lock on the file at path: wait for it, or with `busy`, raise ValueError(busy) at once
    when another process holds it."""
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise ValueError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_lock(run_dir: Path):
    """Hold run_dir/.lock while this process trains the run: a second one (resuming a live run) is refused."""
    busy = f"{run_dir} is in use by another process (is it still running?): resume it once that process has stopped"
    return file_lock(Path(run_dir) / ".lock", busy=busy)


def read_ledger(path: Path) -> pd.DataFrame:
    """A ledger.csv with its text columns as text (stage "01", not 1, also from older ledgers); empty when absent."""
    path = Path(path)
    if not path.exists() or not path.stat().st_size:
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    df = pd.read_csv(path, dtype={c: str for c in LEDGER_TEXT})
    if "stage" in df:
        df["stage"] = df["stage"].map(lambda s: s.zfill(2) if isinstance(s, str) and s.isdigit() else s)
    return df


def append_ledger(row: dict, root: Path | None = None) -> Path:
    """Add one run's row to outputs/ledger.csv under a file lock, replacing an older row of the same run_id (a
    resumed run is listed once)."""
    path = (root or output_dir()) / "ledger.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        old = read_ledger(path)
        if "run_id" in old and row.get("run_id") is not None:
            old = old[old["run_id"] != row["run_id"]]
        new = pd.DataFrame([{c: row.get(c) for c in LEDGER_COLUMNS}])
        write_csv(path, new if old.empty else pd.concat([old, new], ignore_index=True))
    return path
