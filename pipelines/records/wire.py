"""Frame-level records read straight from their protobuf bytes, when laid out canonically.

`tf.io.parse_sequence_example` copies every frame of a record into a string tensor of
its own (600 strings for a 300-frame video) before the student view keeps one in ten of
them. Reading the frames here instead takes the job's parse step (parse, validate,
dequantize) from ~0.12 to ~0.06 ms per video (benchmarks/RESULTS.md). Every standard
serializer (TF's C++, protobuf's Python, the starter code's writers) lays out a frame's
`Feature` identically:

    0x0a len(Feature)  0x0a len(BytesList)  0x0a len(value)  value

so a feature list of n frames of `dim` bytes is n repetitions of one fixed header
followed by `dim` bytes. `split_frame_record` checks that, vectorised over the frames,
and hands back each list as an `[n, dim]` numpy view into the record (no copy), plus
the context's bytes, which are a serialized `Example` as they stand (the context
`Features` is field 1 of both messages), for TF to parse in a batch.

It answers only for records it can read without doubt. Anything else returns None: a
frame of another length or type, a missing, empty or repeated list, a top-level field
other than `context` and `feature_lists`, a truncated length. The caller then parses
the batch with TF, which validates every rule and says what is wrong, so this path
never decides that a record is bad.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from schemas import features as F

_LEN_FIELD_1 = 0x0A  # field 1, wire type 2 (length-delimited)
_LEN_FIELD_2 = 0x12  # field 2, wire type 2
_CONTEXT_FIELD = _LEN_FIELD_1  # SequenceExample.context
_FEATURE_LISTS_FIELD = _LEN_FIELD_2  # SequenceExample.feature_lists
_MAX_VARINT_BYTES = 10


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(payload_length: int) -> bytes:
    return bytes([_LEN_FIELD_1]) + encode_varint(payload_length)


def frame_header(dim: int) -> bytes:
    """The bytes before each `dim`-byte frame in a canonically serialized feature list."""
    value = _length_delimited(dim)  # BytesList.value
    bytes_list = _length_delimited(len(value) + dim)  # Feature.bytes_list
    feature = _length_delimited(len(bytes_list) + len(value) + dim)  # FeatureList.feature
    return feature + bytes_list + value


_HEADERS = {feature: np.frombuffer(frame_header(dim), np.uint8) for feature, dim in F.FEATURE_DIMS.items()}
_KEYS = {feature.encode(): feature for feature in F.FRAME_FEATURES}


@dataclasses.dataclass(frozen=True)
class CanonicalRecord:
    """A frame-level record's parts: what TF needs for the context, numpy views for frames."""

    context_example: bytes  # the context `Features` as a serialized `Example`
    frames: dict[str, np.ndarray]  # feature -> [num_frames, dim] uint8, a view into the record


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """(value, position after it); IndexError or ValueError when cut off or too long."""
    value = shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _field(data: bytes, position: int, end: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of a length-delimited field with a one-byte tag."""
    length, start = _varint(data, position + 1)
    stop = start + length
    if stop > end:
        raise ValueError("field runs past its message")
    return data[position], start, stop


def _feature_list_spans(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]] | None:
    """Byte spans of the frame feature lists in a `FeatureLists` message; None if irregular."""
    spans: dict[str, tuple[int, int]] = {}
    position = start
    while position < end:
        tag, entry_start, entry_end = _field(data, position, end)
        if tag != _LEN_FIELD_1:  # FeatureLists.feature_list, a map entry
            return None
        key_tag, key_start, key_end = _field(data, entry_start, entry_end)
        if key_tag != _LEN_FIELD_1 or key_end >= entry_end:
            return None
        value_tag, value_start, value_end = _field(data, key_end, entry_end)
        if value_tag != _LEN_FIELD_2 or value_end != entry_end:
            return None
        feature = _KEYS.get(data[key_start:key_end])
        if feature is not None:
            if feature in spans:  # a repeated key: which one wins is TF's call
                return None
            spans[feature] = (value_start, value_end)
        position = entry_end
    return spans


def split_frame_record(data: bytes) -> CanonicalRecord | None:
    """The context and frames of a canonically laid-out frame-level record, else None."""
    try:
        return _split(data)
    except (IndexError, ValueError):
        return None


def _split(data: bytes) -> CanonicalRecord | None:
    context = lists = None
    position, end = 0, len(data)
    while position < end:
        tag, start, stop = _field(data, position, end)
        if tag == _CONTEXT_FIELD and context is None:
            context = data[position:stop]  # tag and length included: an Example's field 1
        elif tag == _FEATURE_LISTS_FIELD and lists is None:
            lists = (start, stop)
        else:  # unknown or repeated (protobuf would merge repeats): leave it to TF
            return None
        position = stop
    if lists is None:
        return None
    spans = _feature_list_spans(data, *lists)
    if spans is None or len(spans) != len(F.FRAME_FEATURES):
        return None
    buffer = np.frombuffer(data, np.uint8)
    frames = {}
    for feature, (start, stop) in spans.items():
        header = _HEADERS[feature]
        stride = len(header) + F.FEATURE_DIMS[feature]
        num_frames, rest = divmod(stop - start, stride)
        if rest or num_frames == 0:
            return None
        table = buffer[start:stop].reshape(num_frames, stride)
        if not (table[:, : len(header)] == header).all():
            return None
        frames[feature] = table[:, len(header) :]
    return CanonicalRecord(context or b"", frames)
