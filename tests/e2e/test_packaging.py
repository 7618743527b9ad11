"""What can be checked of packaging without Docker: pins, images, docs."""

import re

from schemas.preprocessed import DatasetLayout
from tests.conftest import REPO_ROOT


def _locked_versions() -> dict:
    versions = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower().replace("_", "-")] = version.strip()
    return versions


def test_lock_pins_the_stack_setup_py_allows():
    locked = _locked_versions()
    assert locked["apache-beam"].startswith("2.77.")
    assert locked["tensorflow"].startswith("2.21.")
    assert locked["tensorflow-transform"].startswith("1.21.")
    assert locked["pyarrow"].startswith("25.")
    for name in (
        "google-cloud-storage",
        "numpy",
        "gcp-storage-emulator",
        "pytest",
        "tensorboard",
        "matplotlib",
    ):
        assert name in locked, name
    assert "fewframes" not in locked


def test_dataflow_image_uses_the_locked_beam_and_python():
    dockerfile = (REPO_ROOT / "docker" / "dataflow.Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert base == f"apache/beam_python3.11_sdk:{_locked_versions()['apache-beam']}"
    assert "requirements.lock" in dockerfile


def test_readme_schema_tables_equal_the_schema_module():
    readme = (REPO_ROOT / "README.md").read_text()
    assert DatasetLayout("frame", teacher_view=True, segments=True).markdown_table() in readme
    assert DatasetLayout("video").markdown_table() in readme
    for encoding in ("all", "top_k:100"):
        layout = DatasetLayout(
            "frame", view="every_n:10", teacher_targets=encoding, num_classes=3862, representation_dim=1024
        )
        for line in layout.markdown_table().splitlines():
            if line.startswith("| `teacher_"):
                assert line in readme, line


def test_readme_gives_exactly_the_two_setup_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+$", setup, flags=re.M) == ["make demo", "make test"]


def test_trainer_image_is_the_locked_tensorflow_gpu_image_running_fewframes_train():
    dockerfile = (REPO_ROOT / "docker" / "trainer.Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert base == f"tensorflow/tensorflow:{_locked_versions()['tensorflow']}-gpu"
    assert re.search(r"^RUN pip install .*-r requirements\.lock", dockerfile, flags=re.M)
    (user,) = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.M)
    assert user not in ("root", "0")
    assert re.findall(r"^ENTRYPOINT\s+(.+)$", dockerfile, flags=re.M) == ['["fewframes", "train"]']
    for source in re.findall(r"^COPY\s+(\S+)\s", dockerfile, flags=re.M):
        assert (REPO_ROOT / source).exists(), source


def test_trainer_job_requests_a_gpu_and_its_args_are_a_valid_train_command():
    import yaml

    from trainer import task

    job = yaml.safe_load((REPO_ROOT / "docker" / "trainer-job.yaml").read_text())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    args = task.build_parser().parse_args(container["args"])
    assert args.job_dir.startswith("gs://") and args.train.startswith("gs://")
    config, _ = task.config_from_args(args, {})
    assert config.mode == "teacher" and config.teacher.preset == "hlstm"
