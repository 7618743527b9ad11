"""Every local `fewframes` command in README.md runs as written (at small sizes).

The README's code blocks form one walk-through on synthetic data: synth, preprocess,
train, teacher-targets, cascade, evaluate, predict, compare. This test extracts each
`fewframes ...` command, drops its optional `[...]` parts, shrinks sizes (fewer
videos and classes, one epoch, CPU-sized presets) by replacing only those flags'
values, and runs it through the console command's entry point in a scratch
directory, in dependency order. The cloud commands (Dataflow, Vertex AI, docker, kubectl) are
checked on our side elsewhere, and the gcloud command's training arguments here.
"""

import re
import shlex

import pytest

from tests.conftest import REPO_ROOT

# Presets replaced where the README's command names one (serial takes no --teacher).
SMALL_PRESETS = {"--teacher": "hlstm-small", "--student": "hlstm-small"}
# Flags appended to every command of a subcommand (argparse keeps the last value).
SMALL = {
    "synth": ["--videos", "24", "--classes", "6", "--frames", "20:60", "--shards", "1", "--no-progress"],
    "preprocess": ["--num-classes", "6"],
    "train": ["--epochs", "1", "--batch-size", "8", "--verbose", "0"],
}


STEP_ORDER = {"synth": 0, "preprocess": 1, "teacher-targets": 3, "evaluate": 5, "predict": 6, "compare": 7}


def readme_commands(prefix: str) -> list[str]:
    """Commands starting with `prefix` in the README's code blocks (continuations joined)."""
    text = (REPO_ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```\n(.*?)^```", text, flags=re.M | re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith(prefix):
                commands.append(" ".join(command.split()))
    return commands


def _order(tokens: list[str]) -> int:
    command = tokens[1]
    if command == "cascade":
        return 4.6 if tokens[2] == "fit" else 4.7  # after the stages' exports, before evaluate
    if command == "train":
        if "--export-only" in tokens:
            return 4.5  # exports a job that an earlier command trained
        return 2 if tokens[tokens.index("--mode") + 1] == "teacher" else 4
    return STEP_ORDER[command]


def _shrink(tokens: list[str]) -> list[str]:
    tokens = list(tokens)
    if tokens[1] == "train":
        for flag, value in SMALL_PRESETS.items():
            if flag in tokens:
                tokens[tokens.index(flag) + 1] = value
    return tokens + SMALL.get(tokens[1], [])


def test_every_readme_fewframes_command_runs_as_written(tmp_path, monkeypatch):
    from pipelines import cli

    commands = [shlex.split(re.sub(r"\s*\[[^\]]*\]", "", c)) for c in readme_commands("fewframes ")]
    subcommands = {tokens[1] for tokens in commands}
    assert {*STEP_ORDER, "train"} <= subcommands
    monkeypatch.chdir(tmp_path)
    for tokens in sorted(commands, key=_order):
        argv = _shrink(tokens)
        assert cli.main(argv[1:]) == 0, " ".join(argv)
    assert (tmp_path / "eval" / "compare" / "report.html").exists()
    assert (tmp_path / "jobs" / "student_offline" / "export" / "saved_model.pb").exists()


def test_readme_vertex_ai_command_passes_a_valid_train_command():
    from trainer import task

    (command,) = readme_commands("gcloud ai custom-jobs create")
    (args,) = re.findall(r"--args=(\S+)", command)
    parsed = task.build_parser().parse_args(args.split(","))
    config, checkpoints = task.config_from_args(parsed, {})
    assert config.mode == "teacher" and config.teacher.preset == "hlstm"
    assert config.train.startswith("gs://") and config.job_dir.startswith("gs://")
    spec = dict(part.split("=", 1) for part in re.search(r"--worker-pool-spec (\S+)", command)[1].split(","))
    assert int(spec["accelerator-count"]) >= 1 and spec["container-image-uri"]


@pytest.mark.parametrize("module", ["pipelines.preprocess", "pipelines.evaluate"])
def test_readme_dataflow_commands_parse_as_their_jobs(module):
    import importlib

    job = importlib.import_module(module)
    (command,) = readme_commands(f"python -m {module} ")
    args, beam_args = job.parse_args(shlex.split(command)[3:])
    assert "--runner" in beam_args and "DataflowRunner" in beam_args
    assert any(a.startswith("--sdk_container_image") or a == "--sdk_container_image" for a in beam_args)
    assert args.output.startswith("gs://")


def test_readme_container_commands_name_our_files_and_job():
    """The docker and kubectl lines point at files we ship and at the Job the YAML defines."""
    import yaml

    builds = [shlex.split(c) for c in readme_commands("docker build ")]
    dockerfiles = {tokens[tokens.index("-f") + 1] for tokens in builds}
    assert dockerfiles == {"docker/trainer.Dockerfile", "docker/dataflow.Dockerfile"}
    assert all((REPO_ROOT / path).exists() for path in dockerfiles)
    pushed = {shlex.split(c)[2] for c in readme_commands("docker push ")}
    assert pushed == {tokens[tokens.index("-t") + 1] for tokens in builds}

    (apply,) = [shlex.split(c) for c in readme_commands("kubectl apply ")]
    manifest = apply[apply.index("-f") + 1]
    job = yaml.safe_load((REPO_ROOT / manifest).read_text())
    (logs,) = readme_commands("kubectl logs ")
    assert shlex.split(logs)[-1] == f"job/{job['metadata']['name']}"
