"""Job-dir file operations for local paths and gs:// (the latter through tf.io.gfile).

Local paths use the standard library, so the JAX / PyTorch backends train without
TensorFlow; a gs:// job dir needs TensorFlow, as production training has.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def is_remote(path: str) -> bool:
    return "://" in path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(*parts: str) -> str:
    if is_remote(parts[0]):
        return "/".join(p.rstrip("/") for p in parts)
    return os.path.join(*parts)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
    if is_remote(path):
        with _gfile().GFile(path, "r") as f:
            return f.read()
    with open(path) as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    """Write whole or not at all: a reader never sees a half-written file."""
    if is_remote(path):
        with _gfile().GFile(path, "w") as f:  # a GCS object appears only when closed
            f.write(text)
        return
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def upload(local_path: str, path: str) -> None:
    """Move a finished local file to `path` atomically (rename locally, copy to GCS)."""
    if is_remote(path):
        _gfile().copy(local_path, path, overwrite=True)
        os.remove(local_path)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.replace(local_path, path)


def download(path: str, local_dir: str) -> str:
    if not is_remote(path):
        return path
    local = os.path.join(local_dir, os.path.basename(path))
    _gfile().copy(path, local, overwrite=True)
    return local


def remove(path: str) -> None:
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)


def rmtree(path: str) -> None:
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def listdir(path: str) -> list[str]:
    if is_remote(path):
        return [p.rstrip("/") for p in _gfile().listdir(path)] if _gfile().exists(path) else []
    return os.listdir(path) if os.path.isdir(path) else []
