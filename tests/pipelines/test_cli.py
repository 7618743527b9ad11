import pathlib
import subprocess
import sys

from pipelines import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.SUBCOMMANDS)


def test_no_command_or_unknown_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert cli.main(["transmogrify"]) == 2
    assert "unknown command 'transmogrify'" in capsys.readouterr().err


def test_subcommands_dispatch_to_their_jobs(tmp_path, capsys):
    assert (
        cli.main(
            [
                "synth",
                "--out",
                str(tmp_path / "raw"),
                "--kind",
                "video",
                "--videos",
                "6",
                "--shards",
                "1",
                "--seed",
                "1",
                "--classes",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "preprocess",
                "--input",
                f"{tmp_path}/raw/train*.tfrecord",
                "--output",
                str(tmp_path / "ds"),
                "--num-classes",
                "4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "preprocessed video-level data" in out and "read 6, written 6, failed 0" in out


def test_console_script_and_module_entry_points_answer_help():
    console = pathlib.Path(sys.executable).parent / "fewframes"
    for command in ([str(console), "--help"], [sys.executable, "-m", "pipelines.cli", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0 and "preprocess" in result.stdout, command
