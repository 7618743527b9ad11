"""Batch-score a partition (labels not needed, e.g. the test set): predictions only.

    python -m pipelines.predict --model JOB_DIR_OR_EXPORT --input 'gs://b/test*.tfrecord' \
        --output gs://b/predictions [--jsonl --vocabulary vocabulary.csv] [Beam pipeline options]

The evaluation job without metrics (`pipelines.scoring.job`, as `pipelines.evaluate`): the same reading,
validation, dead letters and RunInference; writes `predictions.csv` (Kaggle format),
optionally `predictions.jsonl`, `failed-*.jsonl` and `summary.json` (counts, frames
read, model time, model and input identity).
"""

from __future__ import annotations

import sys

from pipelines.scoring import job as scoring_job

PROG = "fewframes predict"


def parse_args(argv):
    """The job's own arguments and the Beam pipeline options, as every job splits them."""
    return scoring_job.parse_args(argv, labels=False, prog=PROG)


def run(argv=None, test_pipeline=None) -> dict:
    return scoring_job.run(argv, test_pipeline, labels=False, prog=PROG)


def main(argv=None) -> int:
    return scoring_job.main(argv, labels=False, prog=PROG)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
