"""The layout's rules that import-linter cannot state (its contracts, in .importlinter, run
in `make test`): the top of pipelines/ holds only commands, at most twelve, and every
module has a test file at its mirror under tests/."""

import ast
import pathlib
import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGES = ("pipelines", "trainer", "schemas")
JOBS = {"preprocess", "teacher_targets", "evaluate", "predict"}
COMMANDS = JOBS | {"cli", "runner", "compare", "demo", "synth", "cascade"}


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path.name != "__init__.py":
                yield path.relative_to(REPO_ROOT)


def test_the_top_of_pipelines_holds_at_most_twelve_modules_all_of_them_commands():
    top = {p.stem for p in (REPO_ROOT / "pipelines").glob("*.py") if p.name != "__init__.py"}
    assert len(top) <= 12, sorted(top)
    assert top <= COMMANDS, sorted(top - COMMANDS)
    assert JOBS <= top


def test_every_job_runs_as_python_dash_m_and_the_commands_have_a_main():
    for name in sorted(JOBS | {"synth", "compare", "demo"}):
        tree = ast.parse((REPO_ROOT / "pipelines" / f"{name}.py").read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "main" in functions, name
        guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        assert guards, f"pipelines/{name}.py has no `if __name__ == '__main__'`"


def test_every_module_has_a_test_file_at_its_mirror():
    missing = [
        str(path)
        for path in _modules()
        if not (REPO_ROOT / "tests" / path.parent / f"test_{path.name}").exists()
    ]
    assert not missing, missing


def test_every_test_folder_is_a_package_so_that_mirrored_names_do_not_collide():
    folders = {p.parent for p in (REPO_ROOT / "tests").rglob("test_*.py")}
    assert all((folder / "__init__.py").exists() for folder in folders), sorted(map(str, folders))


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
