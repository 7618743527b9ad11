"""benchmarks/: the scripts the docs tell people to run exist, and each one runs by path
(`.venv/bin/python benchmarks/NAME.py`, no PYTHONPATH) against this checkout's code."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
PROJECT_PACKAGES = {"benchmarks", "pipelines", "schemas", "trainer"}
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
# The scripts that import the benchmarks package itself: it is not installed, so only the
# script's own sys.path line can make it importable.
IMPORT_BENCHMARKS = [p for p in SCRIPTS if re.search(r"^from benchmarks", p.read_text(), re.M)]


def test_every_benchmark_script_the_docs_name_exists():
    named = set()
    for doc in ("benchmarks/RESULTS.md", "README.md", "ARCHITECTURE.md"):
        named |= set(re.findall(r"(?<![\w/])benchmarks/(\w+)\.py\b", (REPO_ROOT / doc).read_text()))
    missing = sorted(f"benchmarks/{name}.py" for name in named if not (BENCHMARKS / f"{name}.py").is_file())
    assert "train_quality" in named
    assert missing == []


def _project_imports_before_sys_path(path) -> list[str]:
    """The top-level imports of our packages that run before the script puts its checkout
    on sys.path (with an editable install they would load another checkout's code)."""
    early = []
    for node in ast.parse(path.read_text()).body:
        if "sys.path.insert(" in ast.unparse(node):
            return early
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        early += [m for m in modules if m.split(".")[0] in PROJECT_PACKAGES]
    return early


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_benchmark_script_puts_its_checkout_on_sys_path_before_importing_the_project(script):
    assert _project_imports_before_sys_path(script) == []


@pytest.mark.parametrize("script", IMPORT_BENCHMARKS, ids=lambda p: p.name)
def test_a_script_importing_the_benchmarks_package_prints_its_help_when_run_by_path(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script.name}")
