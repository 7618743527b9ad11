"""Job-dir file operations for local paths and gs:// (the latter through tf.io.gfile).

Local paths use the standard library, so the JAX / PyTorch backends train without
TensorFlow; a gs:// job dir needs TensorFlow, as production training has.
"""

from __future__ import annotations

import os
import tempfile


def is_remote(path: str) -> bool:
    return "://" in path


class RemoteStorageUnavailable(ValueError):
    """A gs:// path where TensorFlow (and so tf.io.gfile) is not installed."""


def _gfile():
    try:
        import tensorflow as tf
    except ModuleNotFoundError:
        raise RemoteStorageUnavailable(
            "a gs:// path needs TensorFlow (tf.io.gfile), which is not installed here: "
            "install it or use a local path"
        ) from None
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


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
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


def save_weights(model, path: str) -> None:
    """`model.save_weights` to `path` whole or not at all, so a killed process never
    leaves half a file: on local disk written beside `path` and renamed (a rename within
    one file system is atomic); for GCS written locally and copied (an object appears
    only when complete)."""
    if is_remote(path):
        with tempfile.TemporaryDirectory() as local:
            written = os.path.join(local, os.path.basename(path))
            model.save_weights(written)
            _gfile().copy(written, path, overwrite=True)
        return
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    written = os.path.join(directory, f".tmp-{os.getpid()}-{name}")  # keeps Keras's .weights.h5 suffix
    model.save_weights(written)
    os.replace(written, path)


def load_weights(model, path: str) -> None:
    """`model.load_weights` from a local or gs:// path."""
    if not is_remote(path):
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as local:
        copy = os.path.join(local, os.path.basename(path))
        _gfile().copy(path, copy, overwrite=True)
        model.load_weights(copy)


def remove(path: str) -> None:
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)


def listdir(path: str) -> list[str]:
    if is_remote(path):
        return [p.rstrip("/") for p in _gfile().listdir(path)] if _gfile().exists(path) else []
    return os.listdir(path) if os.path.isdir(path) else []
