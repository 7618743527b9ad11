"""Training benchmark, real data: video-level logistic and MoE on the real sample shards.

    .venv/bin/python benchmarks/train_real.py [--data ../shared/data/yt8m-v2-video-sample] \
        [--epochs 5,10,20,40]

The video-level logistic and MoE trained (`trainer.task`, teacher mode) on the real
sample shards validate0000-0015 and evaluated on validate0016-0019.

Prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # first: this checkout's code, whatever else is installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import train_common as common  # noqa: E402
from trainer import inputs  # noqa: E402
from trainer.training import loop  # noqa: E402


# ===== real: video-level models on the sample shards ========================================
def real(args) -> None:
    import numpy as np

    from trainer import inputs as I
    from trainer.config import TrainConfig
    from trainer.labels import LabelSpace
    from trainer.metrics import MetricsAccumulator

    data = os.path.abspath(args.data)
    root = os.path.join(args.workdir, "real")
    split = {
        "train": [os.path.join(data, f"validate{i:04d}.tfrecord") for i in range(0, 16)],
        "eval": [os.path.join(data, f"validate{i:04d}.tfrecord") for i in range(16, 20)],
    }
    datasets = {}
    for name, files in split.items():
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise SystemExit(f"missing shards: {', '.join(missing)}")
        output = os.path.join(root, name)
        stamp = {"files": files, "sizes": [os.path.getsize(f) for f in files]}
        stamp_path = os.path.join(root, f"{name}.stamp.json")
        if not (
            common._stamp_matches(stamp_path, stamp) and os.path.exists(os.path.join(output, "manifest.json"))
        ):
            common._preprocess(",".join(files), output, common.NUM_CLASSES, "tfrecord", ["--partition", name])
            common._write_json(stamp_path, stamp)
        datasets[name] = output
    labels = LabelSpace.build("entities", common.NUM_CLASSES, None)
    from schemas import features as F
    from schemas.views import View

    counts = {name: inputs.load_layout(d)[1]["videos"] for name, d in datasets.items()}
    eval_plan = I.plan_inputs(datasets["eval"], "teacher", View.parse("all"), F.FRAME_FEATURES, labels)
    stages = [int(e) for e in args.epochs.split(",")]
    results = {"videos": counts, "models": {}}
    for preset in [p.strip() for p in args.models.split(",") if p.strip()]:
        job_dir = os.path.join(root, "jobs", preset)
        shutil.rmtree(job_dir, ignore_errors=True)  # each stage continues the previous one
        rows = []
        for epochs in stages:
            argv = [
                "--train", datasets["train"], "--eval", datasets["eval"], "--job-dir", job_dir,
                "--mode", "teacher", "--teacher", preset, "--epochs", str(epochs),
                "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
                "--seed", str(args.seed),
            ]  # fmt: skip
            summary = _train_job_resumable(argv)
            with open(os.path.join(job_dir, "config.json")) as f:
                config = TrainConfig.from_json(f.read())
            model = loop.load_trained(job_dir, config, "teacher", None, 1)
            acc = MetricsAccumulator(common.NUM_CLASSES)
            for x, y in I.batches(eval_plan, "tfrecord", 512):
                out = model({"frames": x[I.TEACHER_FRAMES], "mask": x[I.TEACHER_MASK]})
                acc.add_batch(np.asarray(out["predictions"], np.float32), np.asarray(y))
            metrics = acc.result()
            numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            row = {"epochs": epochs, "steps": summary["global_step"], **numbers}
            row["in_training_gap"] = summary["metrics"].get("val_teacher_gap")
            rows.append(row)
            print(f"{preset} after {epochs} epochs: GAP {row['gap']:.4f}, Hit@1 {row['hit_at_1']:.4f}, "
                  f"mAP {row['map_all_classes']:.4f}", flush=True)  # fmt: skip
        results["models"][preset] = rows
    common._write_json(os.path.join(root, "results.json"), results)
    print()
    print(real_report(args, results))


def _train_job_resumable(argv: list[str]) -> dict:
    """Train (or continue, when the job dir holds fewer epochs of the same run) to --epochs."""
    import keras

    from trainer import task

    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        summary = task.train_from_argv(argv, verbose=0)
    keras.backend.clear_session()
    return summary


def real_report(args, r: dict) -> str:
    lines = [
        f"Real YouTube-8M v2 video-level sample: train validate0000-0015 ({r['videos']['train']} videos), "
        f"evaluate validate0016-0019 ({r['videos']['eval']} videos), {common.NUM_CLASSES} classes; batch "
        f"{args.batch_size}, Adam {args.learning_rate}, seed {args.seed}; top-20 metrics as the starter.",
        "",
        "| model | epochs | GAP | Hit@1 | PERR | mAP (all classes) | mAP (classes with positives) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, rows in r["models"].items():
        for row in rows:
            lines.append(
                f"| `{preset}` | {row['epochs']} | {row['gap']:.4f} | {row['hit_at_1']:.4f} "
                f"| {row['perr']:.4f} | {row['map_all_classes']:.4f} | {row['map_nonempty_classes']:.4f} |"
            )
    return "\n".join(lines)


# ===== command line =========================================================================
def build_parser() -> argparse.ArgumentParser:
    r = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "yt8m-v2-video-sample"))
    r.add_argument("--models", default="video-logistic,video-moe")
    r.add_argument("--epochs", default="5,10,20,40", help="report after each of these epoch counts")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--learning-rate", type=float, default=1e-3)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--workdir", default=common.DEFAULT_WORKDIR)
    return r


def main(argv=None) -> None:
    real(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
