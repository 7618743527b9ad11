"""Creating pipelines that run locally without downloading anything.

Beam 2.77's DirectRunner first tries the Prism runner, which it downloads from the
internet, and falls back only after that fails. A local run here uses the FnApiRunner
directly (what DirectRunner picks for batch jobs anyway), so it honours
`--direct_num_workers` and `--direct_running_mode` and never reaches the network.
Any other `--runner` (DataflowRunner, PrismRunner, ...) is used as given.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from trainer.config import UsageError  # the one definition: the trainer, below pipelines, raises it too

_LOCAL_RUNNER_NAMES = {None, "DirectRunner", "direct", "FnApiRunner"}

# A job whose dead-lettered share of the records read exceeds --max-failed-fraction
# keeps its outputs (their summary says why) but exits with this code: a model or a
# dataset built mostly from input it could not read is not a result.
EXIT_TOO_MANY_FAILED = 3
DEFAULT_MAX_FAILED_FRACTION = 0.1


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner in _LOCAL_RUNNER_NAMES


def local_runner(options: PipelineOptions):
    """An FnApiRunner configured like DirectRunner would configure it."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=provision_info)


def create_pipeline(options: PipelineOptions) -> beam.Pipeline:
    if is_local(options):
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def parse_job_args(parser, argv):
    """(the job's arguments, the Beam pipeline options) of a job's command line. A flag that
    neither the job nor any Beam pipeline option knows (`--no-reprot`, or evaluate's
    `--no-report` given to predict) is a usage error, where Beam would log a warning and
    drop it."""
    args, beam_args = parser.parse_known_args(argv)
    unknown = unknown_pipeline_flags(beam_args)
    if unknown:
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (neither an option of {parser.prog} "
            "nor a Beam pipeline option)"
        )
    return args, beam_args


def unknown_pipeline_flags(beam_args: list[str]) -> list[str]:
    """The flags of `beam_args` that no registered `PipelineOptions` class parses, found as
    Beam finds them (`PipelineOptions.get_all_options`). A runner named by its module path
    (`--runner apache_beam.runners.dask.dask_runner.DaskRunner`) is imported first, since
    its own options (`--dask_client_address`) register on import."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    runner_name = PipelineOptions(beam_args).view_as(StandardOptions).runner
    if runner_name and "." in runner_name:
        with contextlib.suppress(ImportError):
            importlib.import_module(runner_name.rsplit(".", 1)[0])
    parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(beam_args)
    return [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]


def add_max_failed_fraction_argument(parser) -> None:
    parser.add_argument(
        "--max-failed-fraction",
        type=float,
        default=DEFAULT_MAX_FAILED_FRACTION,
        metavar="F",
        help=f"exit {EXIT_TOO_MANY_FAILED} (outputs kept) when more than this share of the records read "
        f"fail (default {DEFAULT_MAX_FAILED_FRACTION}; 1 accepts any share)",
    )


def check_max_failed_fraction(parser, value: float) -> None:
    if not 0 <= value <= 1:
        parser.error(f"--max-failed-fraction must lie in [0, 1], got {value}")


def failed_share(records_read: int, records_failed: int, max_failed_fraction: float) -> dict:
    """The summary entries that say whether a job failed too many records: `failed_fraction`,
    `max_failed_fraction`, `too_many_failed` and, when it did, `too_many_failed_reason`."""
    fraction = records_failed / records_read if records_read else 0.0
    entries = {
        "failed_fraction": round(fraction, 6),
        "max_failed_fraction": max_failed_fraction,
        "too_many_failed": fraction > max_failed_fraction,
    }
    if entries["too_many_failed"]:
        entries["too_many_failed_reason"] = (
            f"{records_failed} of {records_read} records failed ({fraction:.1%}), more than "
            f"--max-failed-fraction {max_failed_fraction}: see the dead letters for why"
        )
    return entries


def exit_code(prog: str, summary: dict, balanced_key: str = "balanced") -> int:
    """1 unless the summary balances, EXIT_TOO_MANY_FAILED when too many records failed,
    else 0; the reason of a non-zero code in one line on stderr."""
    if not summary[balanced_key]:
        reason = summary.get("unbalanced_reason", "records read != records written + failed")
        print(f"{prog}: error: {reason}", file=sys.stderr)
        return 1
    if summary.get("too_many_failed"):
        print(f"{prog}: error: {summary['too_many_failed_reason']}", file=sys.stderr)
        return EXIT_TOO_MANY_FAILED
    return 0


def job_main(prog: str, run, format_summary, argv=None) -> int:
    """The console `main` of every Beam job (preprocess, teacher-targets, evaluate,
    predict): 2 on a usage error (one line), else the summary `format_summary(summary,
    seconds)` prints, then 1 unless the job's records balance (read = written + failed)
    and EXIT_TOO_MANY_FAILED when the failed share exceeds --max-failed-fraction."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO)
    start = time.time()
    try:
        summary = run(argv)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, time.time() - start))
    return exit_code(prog, summary)
