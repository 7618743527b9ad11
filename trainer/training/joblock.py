"""An exclusive lock on a job dir, so that two trainings never write one job dir at once.

The chief of a training takes it before any work and releases it at the end, also on
errors; the other workers of the same multi-worker run share the chief's job dir and
take none. The lock is the file `train.lock` in the job dir, created atomically
(`O_EXCL` on local disk; on gs:// an object written only if none exists,
`if_generation_match=0`), holding the host, pid and a random token of its owner.
A second training refuses in one line naming the holder. A lock left by a process of
this host that is no longer running (killed with SIGKILL, a crashed machine's reboot)
is stale and taken over; one held by a live process, or by another host (whose
processes cannot be checked from here), is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import socket
import uuid

from trainer import storage
from trainer.job_dir import LOCK_NAME

LOG = logging.getLogger("fewframes.train")
_ATTEMPTS = 5  # a stale lock taken over, or a lock released while we looked: try again


class JobDirLocked(ValueError):
    """Another training holds the job dir's lock."""


@dataclasses.dataclass
class JobLock:
    path: str
    token: str
    generation: int | None = None  # gs://: the lock object's generation, to delete only ours
    created_dir: bool = False  # the job dir did not exist before: removed again if left empty


def lock_path(job_dir: str) -> str:
    return storage.join(job_dir, LOCK_NAME)


@contextlib.contextmanager
def holding(job_dir: str, chief: bool = True):
    """Hold the job dir's lock for the block (a chief only; other workers take none)."""
    if not chief:
        yield None
        return
    lock = acquire(job_dir)
    try:
        yield lock
    finally:
        release(lock)


def acquire(job_dir: str) -> JobLock:
    """Take the lock of `job_dir` (creating the dir), or raise `JobDirLocked`."""
    path = lock_path(job_dir)
    owner = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": uuid.uuid4().hex,
        "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if storage.is_remote(path):
        return _acquire_gcs(path, owner)
    created = not os.path.isdir(job_dir)
    os.makedirs(job_dir, exist_ok=True)
    return dataclasses.replace(_acquire_local(path, owner), created_dir=created)


def release(lock: JobLock) -> None:
    """Remove the lock if it is still ours (never another training's)."""
    if storage.is_remote(lock.path):
        _release_gcs(lock)
        return
    if _read_local(lock.path).get("token") == lock.token:
        os.remove(lock.path)
    if lock.created_dir:
        with contextlib.suppress(OSError):  # not empty: the job wrote into it
            os.rmdir(_job_dir(lock.path))


def _job_dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if storage.is_remote(path) else os.path.dirname(path)


def _refusal(path: str, holder: dict) -> JobDirLocked:
    who = (
        f"host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')}"
        if holder
        else "its lock file is being written or unreadable"
    )
    return JobDirLocked(
        f"{_job_dir(path)} is in use by another training ({who}): wait for it to end, "
        f"or remove {path} if no training runs there"
    )


def _stale(holder: dict) -> bool:
    """The lock's owner ran on this host and is no longer running."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


# ----- local ----------------------------------------------------------------------------
def _read_local(path: str) -> dict:
    """The lock's owner; {} when there is no lock or it is still being written."""
    try:
        with open(path) as f:
            return json.loads(f.read() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _acquire_local(path: str, owner: dict) -> JobLock:
    holder: dict = {}
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_local(path)
            if holder and not _stale(holder):
                break
            if holder:
                _take_over_local(path, holder)
            continue  # taken over, released while we looked, or still being written
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(owner))
            f.flush()
            os.fsync(f.fileno())
        return JobLock(path, owner["token"])
    raise _refusal(path, holder)


def _take_over_local(path: str, holder: dict) -> None:
    """Remove the stale lock `holder` from `path`, and only it: two processes may take it
    over at once, so it is moved aside first and checked to be the one found stale."""
    aside = f"{path}.stale-{os.getpid()}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:  # another process took it over first
        return
    if _read_local(aside).get("token") != holder.get("token"):
        # A live lock, created after the stale one was taken over: put it back.
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    else:
        LOG.warning(
            "taking over the lock of %s: its training (pid %s on this host) is no longer running",
            _job_dir(path),
            holder.get("pid"),
        )
    os.remove(aside)


# ----- gs:// ----------------------------------------------------------------------------
def _blob(path: str):
    """The lock object through google-cloud-storage (tf.io.gfile has no create-if-absent)."""
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import storage as gcs

    bucket, name = path[len("gs://") :].split("/", 1)
    try:
        client = gcs.Client(project=None)  # object requests need no project
    except GoogleAuthError as error:
        raise storage.RemoteStorageUnavailable(
            f"cannot lock {_job_dir(path)}: no Google Cloud credentials ({error})"
        ) from None
    return client.bucket(bucket).blob(name)


def _acquire_gcs(path: str, owner: dict) -> JobLock:
    from google.api_core import exceptions

    blob = _blob(path)
    holder: dict = {}
    for _ in range(_ATTEMPTS):
        existing = blob.bucket.get_blob(blob.name)
        if existing is None:
            try:  # atomic: fails when another training created the lock since we looked
                blob.upload_from_string(
                    json.dumps(owner), content_type="application/json", if_generation_match=0
                )
            except exceptions.PreconditionFailed:
                continue
            return JobLock(path, owner["token"], generation=blob.generation)
        try:
            holder = json.loads(existing.download_as_text())
        except exceptions.NotFound:  # released while we looked
            continue
        except json.JSONDecodeError:
            holder = {}
        if not (holder and _stale(holder)):
            break
        with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
            existing.delete(if_generation_match=existing.generation)  # only the stale lock
            LOG.warning(
                "taking over the lock of %s: its training (pid %s on this host) is no longer running",
                _job_dir(path),
                holder.get("pid"),
            )
    raise _refusal(path, holder)


def _release_gcs(lock: JobLock) -> None:
    from google.api_core import exceptions

    with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
        _blob(lock.path).delete(if_generation_match=lock.generation)
