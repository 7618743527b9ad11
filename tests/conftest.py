"""Shared fixtures: paths to the real sample data and small raw-record builders."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """`../shared/data` beside the checkout (real YT8M sample shards and vocabulary)."""
    path = pathlib.Path(os.environ.get("FEWFRAMES_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "yt8m-v2-video-sample").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared sample data at {path}")
        pytest.skip(f"shared sample data not found at {path}")
    return path


def random_frames(rng: np.random.Generator, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        rng.integers(0, 256, (num_frames, 1024), dtype=np.uint8),
        rng.integers(0, 256, (num_frames, 128), dtype=np.uint8),
    )
