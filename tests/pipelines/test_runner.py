"""pipelines.runner: the one job `main` (exit codes), the failed share, local pipelines."""

import argparse
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import runner


def _summary(read: int, written: int, failed: int, max_failed_fraction: float = 0.1) -> dict:
    return {
        "records_read": read,
        "records_written": written,
        "records_failed": failed,
        "balanced": read == written + failed,
        **runner.failed_share(read, failed, max_failed_fraction),
    }


def _format(summary: dict, seconds: float) -> str:
    return f"read {summary['records_read']}, failed {summary['records_failed']} in {seconds:.0f}s"


def test_a_usage_error_exits_2_with_one_line_on_stderr_and_no_summary(capsys):
    def run(argv):
        raise runner.UsageError(f"--input {argv[1]}: no input files match")

    assert runner.job_main("fewframes preprocess", run, _format, ["--input", "nothing*"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "fewframes preprocess: error: --input nothing*: no input files match\n"
    assert captured.out == ""


def test_a_balanced_job_prints_its_summary_and_exits_0(capsys):
    assert runner.job_main("fewframes x", lambda argv: _summary(10, 9, 1), _format, []) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("read 10, failed 1 in ") and captured.err == ""


def test_a_job_whose_records_do_not_balance_exits_1_after_printing_its_summary(capsys):
    assert runner.job_main("fewframes x", lambda argv: _summary(10, 8, 1), _format, []) == 1
    assert capsys.readouterr().out.startswith("read 10, failed 1")


def test_a_job_that_failed_too_many_records_exits_3_and_says_why_on_stderr(capsys):
    assert runner.job_main("fewframes x", lambda argv: _summary(10, 7, 3), _format, []) == 3
    assert runner.EXIT_TOO_MANY_FAILED == 3
    captured = capsys.readouterr()
    assert captured.out.startswith("read 10, failed 3")
    assert captured.err == (
        "fewframes x: error: 3 of 10 records failed (30.0%), more than --max-failed-fraction 0.1: "
        "see the dead letters for why\n"
    )


def test_an_unbalanced_job_exits_1_even_when_too_many_records_failed(capsys):
    assert runner.exit_code("fewframes x", _summary(10, 5, 3)) == 1
    # The accounting error wins: its line, no failed-share line.
    assert capsys.readouterr().err == "fewframes x: error: records read != records written + failed\n"
    reason = "record accounting does not balance: read 10, written 5, failed 3"
    assert runner.exit_code("fewframes x", {**_summary(10, 5, 3), "unbalanced_reason": reason}) == 1
    assert capsys.readouterr().err == f"fewframes x: error: {reason}\n"


def test_exit_code_reads_the_balance_under_the_key_it_is_given():
    summary = {"balanced": False, "rows_balanced": True, "too_many_failed": False}
    assert runner.exit_code("x", summary, balanced_key="rows_balanced") == 0
    assert runner.exit_code("x", summary) == 1


def test_failed_share_says_too_many_only_above_the_limit():
    at_limit = runner.failed_share(10, 1, 0.1)
    assert at_limit == {"failed_fraction": 0.1, "max_failed_fraction": 0.1, "too_many_failed": False}
    above = runner.failed_share(3, 1, 0.1)
    assert above["failed_fraction"] == 0.333333 and above["too_many_failed"]
    assert above["too_many_failed_reason"].startswith("1 of 3 records failed (33.3%)")
    assert runner.failed_share(0, 0, 0.0) == {
        "failed_fraction": 0.0,
        "max_failed_fraction": 0.0,
        "too_many_failed": False,
    }  # nothing read: nothing failed, and no division by zero
    assert not runner.failed_share(5, 5, 1.0)["too_many_failed"]  # 1 accepts any share


def test_max_failed_fraction_flag_defaults_to_a_tenth_and_refuses_values_outside_0_to_1(capsys):
    parser = argparse.ArgumentParser(prog="fewframes x")
    runner.add_max_failed_fraction_argument(parser)
    assert parser.parse_args([]).max_failed_fraction == runner.DEFAULT_MAX_FAILED_FRACTION == 0.1
    for value in (0.0, 1.0):
        runner.check_max_failed_fraction(parser, value)
    with pytest.raises(SystemExit) as exit_info:
        runner.check_max_failed_fraction(parser, 1.5)
    assert exit_info.value.code == 2
    assert "fewframes x: error: --max-failed-fraction must lie in [0, 1], got 1.5" in capsys.readouterr().err


def test_local_runner_names_are_local_and_other_runners_are_not():
    for argv in ([], ["--runner", "DirectRunner"], ["--runner", "direct"], ["--runner", "FnApiRunner"]):
        assert runner.is_local(PipelineOptions(argv)), argv
    for name in ("DataflowRunner", "PrismRunner", "DaskRunner"):
        assert not runner.is_local(PipelineOptions(["--runner", name])), name


def test_a_local_pipeline_runs_on_the_fn_api_runner_with_its_options(tmp_path):
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    options = PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode", "multi_threading"])
    pipeline = runner.create_pipeline(options)
    assert isinstance(pipeline.runner, fn_runner.FnApiRunner)
    # The workers are provisioned with the job's options, as DirectRunner provisions them.
    provisioned = runner.local_runner(options)._provision_info.provision_info.pipeline_options
    assert provisioned["beam:option:direct_num_workers:v1"] == "2"
    assert provisioned["beam:option:direct_running_mode:v1"] == "multi_threading"
    (
        pipeline
        | beam.Create(range(1, 101))
        | beam.CombineGlobally(sum)
        | beam.Map(json.dumps)
        | beam.io.WriteToText(str(tmp_path / "sum"), shard_name_template="")
    )
    pipeline.run().wait_until_finish()
    assert (tmp_path / "sum").read_text() == "5050\n"


def test_another_runner_is_used_as_given():
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    pipeline = runner.create_pipeline(PipelineOptions(["--runner", "PrismRunner"]))
    assert type(pipeline.runner).__name__ == "PrismRunner"
    assert not isinstance(pipeline.runner, fn_runner.FnApiRunner)


def test_a_flag_neither_the_job_nor_beam_knows_is_a_usage_error_not_a_dropped_warning(capsys):
    from pipelines import predict, preprocess

    with pytest.raises(SystemExit) as exit_info:  # evaluate's flag, given to predict
        predict.parse_args(["--model", "m", "--input", "i", "--output", "o", "--no-report"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        "fewframes predict: error: unrecognized arguments: --no-report "
        "(neither an option of fewframes predict nor a Beam pipeline option)"
    )
    with pytest.raises(SystemExit):  # a misspelt flag of the job itself
        preprocess.parse_args(["--input", "i", "--output", "o", "--num-clases", "6"])
    assert "unrecognized arguments: --num-clases" in capsys.readouterr().err


def test_beam_pipeline_options_pass_through_including_a_runners_own(capsys):
    from pipelines import evaluate

    argv = ["--model", "m", "--input", "i", "--output", "o", "--direct_num_workers", "2"]
    args, beam_args = evaluate.parse_args([*argv, "--temp_location=gs://b/tmp", "--region", "europe-west4"])
    assert beam_args == [
        "--direct_num_workers",
        "2",
        "--temp_location=gs://b/tmp",
        "--region",
        "europe-west4",
    ]
    dask = [
        "--runner",
        "apache_beam.runners.dask.dask_runner.DaskRunner",
        "--dask_client_address",
        "tcp://h:1",
    ]
    assert runner.unknown_pipeline_flags(dask) == []
    assert runner.unknown_pipeline_flags(["--dask_client_adress", "tcp://h:1"]) == ["--dask_client_adress"]
