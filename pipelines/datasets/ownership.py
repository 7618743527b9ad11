"""Which files in an output directory a fewframes job wrote, so `--overwrite` deletes only those.

Every job that writes an output directory (preprocess, teacher-targets, evaluate, predict,
compare) records what it owns in `OWNED_NAME` at the directory's root, through Beam's
FileSystems (local or gs://):

- `claim` runs before the first output file is written. It refuses an output path with
  glob characters (paths are literal), a link anywhere inside a local output, and a
  directory holding files unless `overwrite`; with `overwrite` it deletes exactly the
  files the earlier run owned, and refuses, naming them, when any other file is there.
  It then records what this run *may* write (`Claims`: exact names, Beam shard names,
  and name prefixes for the sinks' temporary directories and TFT's directories), so a
  run that crashes leaves a record that covers every file it had written.
- `commit` runs after the last output file: the record then lists the exact files.

An output written before this record existed has none; it counts as owned when every
file in it is one the job's `Claims` name (which lists what today's code writes), and is
refused otherwise. A record of another kind (a dataset, when evaluate is to overwrite)
is refused too: `--overwrite` replaces an output only with one of its own kind.

The record is rewritten whole (gs:// objects cannot be appended to); only the launcher
writes it, before and after the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from apache_beam.io.filesystems import FileSystems

OWNED_NAME = ".fewframes-owned"
GLOB_CHARACTERS = "*?["
SHARD_NAME = r"-\d{5,}-of-\d{5,}"  # Beam's default shard name template, -SSSSS-of-NNNNN
_SHOWN = 5  # file names a refusal lists


@dataclasses.dataclass(frozen=True)
class Claims:
    """The files of an output directory that one kind of job writes (names relative to it).

    `files`: exact names; `shards`: `(prefix, suffix)` pairs, Beam shards named
    `prefix-SSSSS-of-NNNNN` + suffix; `trees`: name prefixes that own every file under
    them (a sink's `beam-temp-NAME-` directory, a directory a library fills).
    """

    kind: str
    files: tuple[str, ...] = ()
    shards: tuple[tuple[str, str], ...] = ()
    trees: tuple[str, ...] = ()

    def owns(self, name: str) -> bool:
        if name in self.files or any(name.startswith(tree) for tree in self.trees):
            return True
        return any(
            name.startswith(prefix)
            and name.endswith(suffix)
            and re.fullmatch(SHARD_NAME, name[len(prefix) : len(name) - len(suffix)]) is not None
            for prefix, suffix in self.shards
        )

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "files": sorted(self.files),
            "shards": [list(pair) for pair in self.shards],
            "trees": list(self.trees),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Claims:
        """The record's claims; only strings are taken from it (a record is data, never code)."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ValueError("not an ownership record")
        files, shards, trees = data.get("files", []), data.get("shards", []), data.get("trees", [])
        if not (
            all(isinstance(name, str) for name in files)
            and all(isinstance(tree, str) and tree for tree in trees)
            and all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
                for pair in shards
            )
        ):
            raise ValueError("malformed ownership record")
        return cls(data["kind"], tuple(files), tuple(tuple(pair) for pair in shards), tuple(trees))


def check(
    output: str, overwrite: bool, claims: Claims, not_ours: str, hint: str, error=ValueError
) -> list[str]:
    """The files under `output` (relative names) that `claim` deletes (the record among them,
    which it rewrites instead). Raises `error` with one line where `claim` would refuse: glob
    characters in `output`, a link inside it, files without `overwrite`, or files that
    {not_ours} ("{output} holds files that {not_ours}: NAMES; {hint}"). Deletes nothing."""
    output = output.rstrip("/")
    if any(c in output for c in GLOB_CHARACTERS):
        raise error(f"--output {output}: an output path is literal and may not hold glob characters (*?[)")
    names = list_files(output, error)
    if not names:
        return []
    if not overwrite:
        raise error(f"{output} already holds files ({len(names)}); pass --overwrite to replace them")
    earlier = _earlier_claims(output, names, claims, not_ours, hint, error)
    foreign = sorted(name for name in names if name != OWNED_NAME and not earlier.owns(name))
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (
            f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
        )
        raise error(f"{output} holds files that {not_ours}: {shown}; {hint}")
    return names


def claim(output: str, overwrite: bool, claims: Claims, not_ours: str, hint: str, error=ValueError) -> None:
    """Make `output` ready for a run that writes `claims` (see `check` for the refusals):
    delete the earlier run's files, then record `claims` before anything else is written."""
    output = output.rstrip("/")
    names = check(output, overwrite, claims, not_ours, hint, error)
    doomed = [name for name in names if name != OWNED_NAME]
    if doomed:
        FileSystems.delete([f"{output}/{name}" for name in doomed])
        if FileSystems.get_scheme(output) is None:
            _remove_emptied_directories(output, doomed)
    # Replaces the earlier record last: a crash before this line leaves it covering what is left.
    _write_record(output, claims)


def commit(output: str, claims: Claims) -> None:
    """Record the exact files the finished run wrote (those `claims` names) in place of the claims."""
    output = output.rstrip("/")
    written = tuple(name for name in list_files(output) if name != OWNED_NAME and claims.owns(name))
    _write_record(output, Claims(claims.kind, files=written))


def list_files(directory: str, error=ValueError) -> list[str]:
    """Every file under `directory`, relative to it, listed literally (no glob); raises
    `error` for a link inside a local directory (writing through it would reach files
    outside) and for a path that is a file."""
    directory = directory.rstrip("/")
    if FileSystems.get_scheme(directory) is not None:
        if any(c in directory for c in GLOB_CHARACTERS):  # the listing below is a pattern
            raise error(f"{directory}: a path with glob characters (*?[) cannot be listed literally")
        matched = FileSystems.match([directory + "/**"])[0].metadata_list
        return sorted(m.path[len(directory) + 1 :] for m in matched)
    if not os.path.lexists(directory):
        return []
    if not os.path.isdir(directory):
        raise error(f"{directory} is a file, not a directory")
    names = []
    for root, dirs, files in os.walk(directory):
        for entry in sorted(dirs + files):
            path = os.path.join(root, entry)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if os.path.islink(path):
                raise error(
                    f"{directory} holds a link, {relative} -> {os.readlink(path)}; jobs do not write "
                    "through links in an output, so remove it or choose another --output"
                )
            if entry in files:
                names.append(relative)
    return sorted(names)


def _earlier_claims(output, names, claims: Claims, not_ours, hint, error) -> Claims:
    """What the run that wrote `output` owns: its record, or without one `claims` itself."""
    if OWNED_NAME not in names:
        return claims
    try:
        with FileSystems.open(f"{output}/{OWNED_NAME}") as stream:
            earlier = Claims.from_dict(json.loads(stream.read()))
    except (ValueError, OSError) as problem:
        raise error(f"{output}/{OWNED_NAME} cannot be read ({problem}); {hint}") from None
    if earlier.kind != claims.kind:
        raise error(f"{output} holds files that {not_ours} (a fewframes {earlier.kind} output); {hint}")
    return earlier


def _write_record(output: str, claims: Claims) -> None:
    payload = json.dumps({**claims.to_dict(), "fewframes_owned": 1}, indent=1, sort_keys=True).encode()
    with FileSystems.create(f"{output}/{OWNED_NAME}", mime_type="application/json") as stream:
        stream.write(payload)


def _remove_emptied_directories(output: str, deleted: list[str]) -> None:
    """Local directories under `output` that held deleted files and are now empty, deepest first."""
    directories = set()
    for name in deleted:
        parts = name.split("/")[:-1]
        directories.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for directory in sorted(directories, key=lambda d: d.count("/"), reverse=True):
        try:
            os.rmdir(os.path.join(output, directory))
        except OSError:  # not empty: it holds something we did not delete
            pass
