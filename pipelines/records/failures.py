"""Dead-letter records: what failed, where, and why.

Every record that is read either reaches the dataset or becomes exactly one failure,
so `records_read = records_written + records_failed` holds by construction and is
checked at the end of every run.
"""

from __future__ import annotations

import json

import apache_beam as beam

FAILED = "failed"  # tag of the dead-letter output of a DoFn

# Stages, so a user can tell a damaged file from an invalid record.
STAGE_READ = "read"
STAGE_PARSE = "parse"
STAGE_VALIDATE = "validate"
STAGE_DUPLICATE = "duplicate"


def failure(source: str, index: int, offset: int, stage: str, reason: str, video_id: str = "") -> dict:
    return {
        "source": source,
        "record_index": index,
        "byte_offset": offset,
        "stage": stage,
        "reason": reason,
        "id": video_id,
    }


class WriteJsonLines(beam.PTransform):
    """Dicts as JSON Lines shards under `prefix` (`prefix-00000-of-0000N.jsonl`)."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix

    def expand(self, records):
        return (
            records
            | "ToJson" >> beam.Map(lambda record: json.dumps(record, sort_keys=True))
            | "WriteLines" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl")
        )
