"""TFRecord framing that survives damaged shards.

A TFRecord file is a sequence of frames:

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

Beam's and TensorFlow's readers stop the whole job at the first bad checksum. This
reader instead reports damage and keeps every whole record:

* a bad data checksum: the length is trustworthy, so that one record is reported and
  reading goes on with the next;
* a bad length checksum or a cut-off tail: nothing after it can be framed, so the
  shard ends there, with the byte offset reported.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class Record:
    """One whole record: its position in the shard (index counts every frame seen)."""

    index: int
    offset: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class Damage:
    """A frame that could not be read; `ends_shard` when nothing after it is readable."""

    index: int
    offset: int
    reason: str
    ends_shard: bool


def encode_record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return b"".join((header, _FOOTER.pack(masked_crc32c(header)), data, _FOOTER.pack(masked_crc32c(data))))


def write_records(fileobj: BinaryIO, records) -> int:
    """Write serialized records as TFRecord frames; returns bytes written."""
    written = 0
    for data in records:
        frame = encode_record(data)
        fileobj.write(frame)
        written += len(frame)
    return written


def _read_exactly(fileobj: BinaryIO, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def iter_frames(fileobj: BinaryIO, max_record_bytes: int = 1 << 30) -> Iterator[Record | Damage]:
    """Yield every whole record of a TFRecord stream and a `Damage` for each bad frame."""
    index = 0
    offset = 0
    while True:
        header = _read_exactly(fileobj, _HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            yield Damage(index, offset, f"truncated record header ({len(header)} of 12 bytes)", True)
            return
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
            yield Damage(index, offset, "corrupt record length (length checksum mismatch)", True)
            return
        if length > max_record_bytes:
            yield Damage(index, offset, f"record length {length} exceeds {max_record_bytes}", True)
            return
        # Data and footer read apart: slicing them out of one read would copy the data.
        data = _read_exactly(fileobj, length)
        footer = _read_exactly(fileobj, _FOOTER.size) if len(data) == length else b""
        if len(footer) < _FOOTER.size:
            got = len(data) + len(footer)
            yield Damage(index, offset, f"truncated record ({got} of {length + 4} bytes after header)", True)
            return
        (data_crc,) = _FOOTER.unpack(footer)
        if masked_crc32c(data) != data_crc:
            yield Damage(index, offset, "corrupt record data (data checksum mismatch)", False)
        else:
            yield Record(index, offset, data)
        index += 1
        offset += _HEADER.size + length + _FOOTER.size
