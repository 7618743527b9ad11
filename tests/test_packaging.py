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


def test_readme_gives_exactly_the_two_setup_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+$", setup, flags=re.M) == ["make demo", "make test"]
