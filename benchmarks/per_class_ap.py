"""Per-class AP of trained jobs on one eval dataset, split by how frequent each class is in training.

    .venv/bin/python benchmarks/per_class_ap.py --train DATASET --eval DATASET \
        NAME=JOB_DIR[:ROLE] [NAME=JOB_DIR[:ROLE] ...] [--json OUT]

Each job's final weights (`weights/<role>.weights.h5`; the student unless `:teacher`) are
rebuilt with `trainer.task.load_trained` and scored on the eval dataset through the same
input plan as the job's own evaluation, so the mAP printed here is the job's
`val_<role>_map_nonempty_classes`. The classes are ranked by their positives in the
training dataset and split into thirds (frequent, middle, rare); the table gives each
job's mean AP over each third, and each later job's difference from the first one.
Written to find out which classes distillation trades away when it lowers mAP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _class_positives(dataset: str, label_space) -> np.ndarray:
    """Positives per class over a preprocessed dataset (its student view is read, not used)."""
    from schemas import features as F
    from schemas.views import View
    from trainer import inputs as I
    from trainer.config import STUDENT

    plan = I.plan_inputs(dataset, STUDENT, View.parse("every_n:10"), F.FRAME_FEATURES, label_space, "eval")
    fmt = I.resolve_format(plan, "auto", "tensorflow")
    counts = np.zeros(label_space.num_classes, np.int64)
    for _, y in I.batches(plan, fmt, 256):
        counts += np.asarray(y).astype(np.int64).sum(axis=0)
    return counts


def per_class_ap(job_dir: str, role: str, eval_dataset: str) -> tuple[list[dict], dict, object]:
    """(per-class AP rows, overall metrics, label space) of a job's trained `role` on `eval_dataset`."""
    from trainer.normalization import zscore_parameters

    from trainer import inputs as I
    from trainer import task
    from trainer.config import STUDENT, TEACHER, TrainConfig
    from trainer.metrics import MetricsAccumulator

    with open(os.path.join(job_dir, "config.json")) as f:
        config = TrainConfig.from_json(f.read())
    train_layout, train_manifest = I.load_layout(config.train)
    label_space = task._label_space(config, train_manifest)
    train_plan = task._train_plan(config, label_space)
    zscore = zscore_parameters(train_plan.dataset_dir, train_plan.manifest)
    view = config.student_view
    if role == "teacher":
        plan = I.plan_inputs(eval_dataset, TEACHER, view.serving_view, config.features, label_space, "eval")
        width, frames, mask = task._model_widths(plan, view)["teacher"], I.TEACHER_FRAMES, I.TEACHER_MASK
    else:
        plan = I.plan_inputs(eval_dataset, STUDENT, view.serving_view, config.features, label_space, "eval")
        width, frames, mask = task._model_widths(plan, view)["student"], I.STUDENT_FRAMES, I.STUDENT_MASK
    model = task.load_trained(job_dir, config, role, zscore, width)
    accumulator = MetricsAccumulator(label_space.num_classes)
    for x, y in I.batches(plan, I.resolve_format(plan, "auto", "tensorflow"), 128):
        outputs = model({"frames": x[frames], "mask": x[mask]}, training=False)
        accumulator.add_batch(np.asarray(outputs["predictions"], np.float32), np.asarray(y))
    return accumulator.per_class(), accumulator.result(), label_space


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the jobs' training dataset (class frequencies)")
    parser.add_argument("--eval", required=True, help="the dataset to score")
    parser.add_argument("jobs", nargs="+", metavar="NAME=JOB_DIR[:ROLE]")
    parser.add_argument("--json", help="write the per-class rows here")
    args = parser.parse_args(argv)
    rows, label_space = {}, None
    for spec in args.jobs:
        name, _, rest = spec.partition("=")
        job_dir, _, role = rest.partition(":")
        per_class, overall, label_space = per_class_ap(job_dir, role or "student", args.eval)
        rows[name] = {"per_class": per_class, "overall": overall}
        print(f"{name}: GAP {overall['gap']:.4f}  mAP {overall['map_nonempty_classes']:.4f}", flush=True)
    positives = _class_positives(args.train, label_space)
    order = np.argsort(-positives, kind="stable")
    thirds = np.array_split(order, 3)
    names = list(rows)
    first = names[0]
    ap = {n: np.array([r["ap"] for r in rows[n]["per_class"]]) for n in names}
    eval_positives = np.array([r["positives"] for r in rows[first]["per_class"]])
    groups = [("frequent", thirds[0]), ("middle", thirds[1]), ("rare", thirds[2])]
    header = "| classes (train positives) | " + " | ".join(f"{n} AP" for n in names)
    header += "".join(f" | {n} − {first}" for n in names[1:]) + " |"
    print("\n" + header)
    print("| --- " * (1 + len(names) + len(names) - 1) + "|")
    for label, classes in groups:
        classes = classes[eval_positives[classes] > 0]
        text = f"| {label}: {len(classes)} classes, {positives[classes].min()}–{positives[classes].max()} |"
        text += "".join(f" {ap[n][classes].mean():.3f} |" for n in names)
        text += "".join(
            f" {np.mean(ap[n][classes] - ap[first][classes]):+.3f} "
            f"({int(np.sum(ap[n][classes] < ap[first][classes]))} lower) |"
            for n in names[1:]
        )
        print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"train_positives": positives.tolist(), "jobs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
