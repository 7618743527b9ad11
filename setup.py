"""fewframes: YouTube-8M-scale video classification that reads fewer frames."""

from setuptools import find_packages, setup

setup(
    name="fewframes",
    version="0.1.0",
    description="Beam preprocessing, teacher-student training and Beam evaluation for YouTube-8M",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["pipelines", "pipelines.*", "trainer", "trainer.*", "schemas", "schemas.*"]
    ),
    install_requires=[
        "apache-beam[gcp]>=2.77,<2.78",
        "tensorflow>=2.21,<2.22",
        "tensorflow-transform>=1.21,<1.22",
        "keras>=3.10,<4",
        "numpy>=1.26,<3",
        "pyarrow>=25,<26",
        "google-cloud-storage>=2.14,<4",
        "google-crc32c>=1.5,<2",
        "tensorboard>=2.21,<2.22",
        "matplotlib>=3.8,<4",
        "tqdm>=4.66,<5",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "gcp-storage-emulator>=2024.8",
            "ruff>=0.6",
            "duckdb>=1.1",
            "dask[distributed]>=2024.4.2",
            # JAX DataParallel over host devices forced by XLA_FLAGS (test_distribution.py)
            "jax[cpu]>=0.4.34",
            "import-linter>=2.1,<3",
        ],
    },
    entry_points={"console_scripts": ["fewframes=pipelines.cli:main"]},
)
