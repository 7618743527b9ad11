"""What the training benchmarks share: datasets, JSON results, the model pairs.

The training benchmarks, one script each (every one writes JSON under --workdir,
default /tmp/fewframes-train-bench):

    benchmarks/train_quality.py      GAP of teacher / student / parallel / serial over views and seeds
    benchmarks/train_speed.py        analytic FLOPs and model time, teacher vs student, side by side
    benchmarks/train_e2e.py          read + parse + model: compact vs full dataset
    benchmarks/train_real.py         video-level logistic and MoE on the real sample shards
    benchmarks/train_throughput.py   training examples/s (and GPU utilisation) on this backend
"""

from __future__ import annotations

import json
import os
import shutil

DEFAULT_WORKDIR = "/tmp/fewframes-train-bench"
NUM_CLASSES = 3862
INPUT_DIM = 1152  # rgb 1024 + audio 128


def _stamp_matches(path: str, stamp: dict) -> bool:
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return json.load(f) == stamp


def _write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def _preprocess(inputs: str, output: str, num_classes: int, formats: str, extra=()) -> dict:
    from pipelines import preprocess

    return preprocess.run(
        [
            "--input",
            inputs,
            "--output",
            output,
            "--num-classes",
            str(num_classes),
            "--format",
            formats,
            "--num-shards",
            "4",
            "--overwrite",
            *extra,
        ]
    )


def _synthetic_dataset(root: str, name: str, synth: dict, preprocess_flags: list[str], formats: str) -> str:
    """Generate synthetic shards and preprocess them into ROOT/NAME (reused when unchanged)."""
    from pipelines.synth import SynthConfig, generate

    output = os.path.join(root, name)
    stamp = {"synth": synth, "preprocess": preprocess_flags, "formats": formats}
    stamp_path = os.path.join(root, f"{name}.stamp.json")
    if _stamp_matches(stamp_path, stamp) and os.path.exists(os.path.join(output, "manifest.json")):
        return output
    raw_dir = os.path.join(root, f"raw-{name}")
    shutil.rmtree(raw_dir, ignore_errors=True)
    config = SynthConfig(**synth)
    summary = generate(raw_dir, config, progress=False)
    print(
        f"  generated {summary.videos} {config.partition} videos, "
        f"{summary.frames / summary.videos:.0f} frames mean, in {summary.seconds:.0f}s",
        flush=True,
    )
    _preprocess(
        os.path.join(raw_dir, f"{config.partition}*.tfrecord"),
        output,
        config.classes,
        formats,
        ["--no-duplicate-check", *preprocess_flags],
    )
    shutil.rmtree(raw_dir, ignore_errors=True)
    _write_json(stamp_path, stamp)
    return output


SPEED_PAIRS = {
    "hlstm": ("H-LSTM (paper)", "hlstm", "hlstm-student"),
    "dbof": ("DBoF", "dbof", "dbof"),
    "netvlad": ("NetVLAD", "netvlad", "netvlad"),
    "nextvlad": ("NeXtVLAD", "nextvlad", "nextvlad"),
    "mean": ("mean-logistic", "mean-logistic", "mean-logistic"),
    "lstm": ("LSTM (starter)", "lstm", "lstm"),
}


def _pairs(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for key in (k.strip() for k in text.split(",") if k.strip()):
        if key in SPEED_PAIRS:
            out.append((key, *SPEED_PAIRS[key]))
        elif "/" in key:  # TEACHER/STUDENT presets
            teacher, student = key.split("/", 1)
            out.append((key, key, teacher, student))
        else:
            raise SystemExit(f"unknown pair {key!r}: one of {', '.join(SPEED_PAIRS)} or TEACHER/STUDENT")
    return out


def _classifier(preset: str, width: int, params: dict | None = None):
    """A preset's classifier, with `params` overrides as `--teacher-params` takes them."""
    from trainer.config import ModelChoice
    from trainer.distill import FramesClassifier

    params = params or {}
    choice = ModelChoice(preset, params.get("aggregator", {}), params.get("head", {}))
    return FramesClassifier(choice.spec(), NUM_CLASSES, INPUT_DIM).build_on(width)
