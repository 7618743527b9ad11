"""Evaluate an exported model on a partition with Beam: exact YouTube-8M metrics.

    python -m pipelines.evaluate --model JOB_DIR_OR_EXPORT --input 'gs://b/validate*.tfrecord' \
        --output gs://b/eval/student [--vocabulary vocabulary.csv] [Beam pipeline options]

Reads raw shards or a preprocessed dataset, validates each record (bad ones to the dead
letter with their reason), scores every video with the export through RunInference and
writes `metrics.json` (GAP, mAP, Hit@1, PERR, frames read, model time), `per_class.csv`,
`videos.parquet`, `predictions.csv` (Kaggle format), `failed-*.jsonl` and `report.html`.
Rated 2019 segments, when the input has them, also give segment mAP@100000. The job is
`pipelines.scoring.job`, which `predict` runs without labels.
"""

from __future__ import annotations

import sys

from pipelines.scoring import job as scoring_job

PROG = "fewframes evaluate"
format_summary = scoring_job.format_summary  # the lines `main` prints after a run


def parse_args(argv):
    """The job's own arguments and the Beam pipeline options, as every job splits them."""
    return scoring_job.parse_args(argv, labels=True, prog=PROG)


def run(argv=None, test_pipeline=None) -> dict:
    """Run the job; returns what it wrote to metrics.json."""
    return scoring_job.run(argv, test_pipeline, labels=True, prog=PROG)


def main(argv=None) -> int:
    return scoring_job.main(argv, labels=True, prog=PROG)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
