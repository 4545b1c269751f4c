"""Run records and atomic writes shared by every command (no torch import here).

Every run writes, next to its results, what produced them: its configuration, library versions,
the commit of this checkout, the machine and timings. ``classifiers/`` imports this module, so it
must stay free of torch.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["write_feature_files", "file_stamp", "folder_lock", "versions", "commit", "run_record", "atomic_write_json", "atomic_write_bytes", "atomic_write_many",
           "atomic_save_npz", "to_jsonable", "current_umask", "sha256_file"]

_PACKAGES = ("randomcnn", "numpy", "scipy", "scikit-learn", "torch", "librosa", "soundfile", "hpelm",
             "joblib", "pandas", "matplotlib", "tqdm")  # randomcnn: this project's own installed version
_REPO = Path(__file__).resolve().parent.parent


def versions() -> dict:
    """Python and installed library versions (read from package metadata; nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def commit() -> dict:
    """The git commit of this checkout and whether it has uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": dirty}


def run_record(config: dict) -> dict:
    """Everything needed to say how a result was produced."""
    return {
        "config": to_jsonable(config),
        "versions": versions(),
        "commit": commit(),
        "machine": {"host": socket.gethostname(), "platform": platform.platform(),
                    "processor": platform.machine(), "cpu_count": os.cpu_count()},
        "argv": list(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def to_jsonable(obj):
    """Convert numpy scalars/arrays, paths and tuples to plain JSON types (recursively)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it: done under a lock, restored)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _atomic(path: Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename over ``path``.

    ``mkstemp`` creates its file mode 0600; it is set to what ``open()`` would give (0666 minus the
    umask), so a shared output or cache folder stays readable by the others the umask allows. An
    ``OSError`` (disk full, read-only folder) leaves no temporary file behind and names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # "[Errno 28] No space left on device: '<path>'"
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written."""
    return _atomic(path, lambda f: f.write(data))


def atomic_write_many(files: dict) -> list[Path]:
    """Write several files so that either all are replaced or none is: every file's bytes go to a
    temporary file beside it first (a full disk fails here, before anything is replaced), then each
    is renamed over its target. ``files`` maps path -> bytes; returns the paths written."""
    temps = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException as e:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError) and e.filename is None and temps:
            e.filename = str(temps[-1][1])
        raise
    for tmp, path in temps:
        os.replace(tmp, path)
    return [path for _, path in temps]


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path, **arrays) -> Path:
    """Write an uncompressed ``.npz`` (readable by ``np.load``) through a temporary file and a rename.

    Unlike ``np.savez`` every zip entry gets a fixed timestamp, so the same arrays always give the
    same bytes: a feature set can be checked with a hash, and a resumed run compared byte for byte.
    """
    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return _atomic(path, write)


def sha256_file(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def folder_lock(folder, say=None):
    """Hold ``.<folder>.lock`` beside ``folder`` (``fcntl.flock``) for the block: a second run of the same
    output waits for the first (``say`` is told so), then sees what it wrote. The one lock of feature sets
    and results. ``OSError`` when the lock file cannot be made (a part of the path is a file)."""
    folder = Path(folder)
    path = folder.with_name(f".{folder.name}.lock")  # hidden: globs of outputs never match it
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (the atomic writes still keep every file whole)
        with f:
            yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say is not None:
                say(f"{folder}: another run of this same configuration is writing it; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def file_stamp(path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of a file, None when it cannot be stat'ed: the one stamp by which the dataset
    key, the decode cache and a feature set's clip list know a file is unchanged."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return int(st.st_size), int(st.st_mtime_ns)


def write_feature_files(folder, arrays: dict, meta: dict) -> dict:
    """The one way a feature set is written (extraction and the hand-made sets of tests and benchmarks):
    a stale ``meta.json`` removed first, ``features.npz`` (fixed zip timestamps: same arrays, same bytes),
    then ``meta.json`` last with the npz's SHA-256, so a crash at any point leaves nothing a reader
    trusts. Returns the meta written."""
    folder = Path(folder)
    (folder / "meta.json").unlink(missing_ok=True)
    atomic_save_npz(folder / "features.npz", **arrays)
    meta = dict(meta, features_sha256=sha256_file(folder / "features.npz"))
    atomic_write_json(folder / "meta.json", meta)
    return meta
