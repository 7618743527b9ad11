"""Training benchmark, end to end: read + parse + model, compact vs full dataset.

    .venv/bin/python benchmarks/train_e2e.py [--videos 320] [--pairs hlstm,dbof,mean]

Read + parse + model from TFRecord datasets of synthetic 300-frame videos: the
teacher from the full-view dataset against the student from a compact every_n:10
dataset (and from the full dataset), videos/s through `trainer.inputs` + the model.

Prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # first: this checkout's code, whatever else is installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import train_common as common  # noqa: E402

# ===== e2e: read + parse + model ============================================================
E2E_SOURCES = (
    "teacher, full dataset",
    "student, compact dataset",
    "student, full dataset (stored view)",
    "student, full dataset (view cut from the full view)",
)


def e2e(args) -> None:
    import tensorflow as tf

    from schemas import features as F
    from schemas.views import View
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    root = os.path.join(args.workdir, "e2e")
    synth = {
        "kind": "frame", "videos": args.videos, "shards": 4, "seed": 7, "classes": common.NUM_CLASSES,
        "min_frames": args.frames, "max_frames": args.frames, "partition": "train",
    }  # fmt: skip
    full_dir = common._synthetic_dataset(
        root, "full", synth, ["--view", args.view, "--teacher-view"], "tfrecord"
    )
    compact_dir = common._synthetic_dataset(root, "compact", synth, ["--view", args.view], "tfrecord")
    view = View.parse(args.view)
    labels = LabelSpace.build("entities", common.NUM_CLASSES, None)
    features = F.FRAME_FEATURES
    teacher_plan = I.plan_inputs(full_dir, "teacher", view, features, labels)
    sources = {
        E2E_SOURCES[0]: ("teacher", teacher_plan, I.TEACHER_FRAMES, I.TEACHER_MASK),
        E2E_SOURCES[1]: (
            "student",
            I.plan_inputs(compact_dir, "student", view, features, labels),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
        E2E_SOURCES[2]: (
            "student",
            I.plan_inputs(full_dir, "student", view, features, labels),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
        E2E_SOURCES[3]: (
            "student",
            dataclasses.replace(teacher_plan, teacher=False, student_view=view, student_from_full=True),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
    }
    sizes = {
        name: sum(os.path.getsize(p) for p in glob.glob(os.path.join(d, "tfrecord", "*")))
        for name, d in (("full", full_dir), ("compact", compact_dir))
    }

    # Each dataset is built once (tf.data traces its parse function then) and iterated
    # once untimed, so the timed passes measure reading, parsing and the model only.
    datasets = {
        name: I.batches(plan, "tfrecord", args.batch_size) for name, (_, plan, _, _) in sources.items()
    }

    def run(name, model=None, warm_up=False) -> float:
        _, plan, frames_key, mask_key = sources[name]
        for path in glob.glob(os.path.join(plan.dataset_dir, "tfrecord", "*")):
            with open(path, "rb") as f:  # page cache warm: measure parsing, not the disk
                while f.read(16 << 20):
                    pass
        videos = 0
        start = time.perf_counter()
        for x, _ in datasets[name].take(1) if warm_up else datasets[name]:
            if model is None:
                x[frames_key].numpy()
            else:
                model(x[frames_key], x[mask_key]).numpy()
            videos += int(x[frames_key].shape[0])
        return videos / (time.perf_counter() - start)

    results = {"sizes": sizes, "videos": args.videos, "pairs": {}}
    for name in sources:
        run(name)  # untimed: the first pass of a tf.data pipeline starts its threads
    input_rates = {name: [] for name in sources}
    for _ in range(args.reps):
        for name in sources:
            input_rates[name].append(run(name))
    results["input_only"] = {name: max(r) for name, r in input_rates.items()}
    print("input only (videos/s):", json.dumps(results["input_only"]), flush=True)
    for key, label, teacher_preset, student_preset in common._pairs(args.pairs):
        models = {
            "teacher": common._classifier(teacher_preset, F.MAX_FRAMES),
            "student": common._classifier(student_preset, view.max_selected),
        }
        functions = {
            role: tf.function(lambda f, m, model=model: model({"frames": f, "mask": m})["predictions"])
            for role, model in models.items()
        }
        for name, (role, _, _, _) in sources.items():
            run(name, functions[role], warm_up=True)  # trace on the real batch shapes and dtypes
        rates = {name: [] for name in sources}
        for _ in range(args.reps):
            for name, (role, _, _, _) in sources.items():
                rates[name].append(run(name, functions[role]))
        best = {name: max(r) for name, r in rates.items()}
        results["pairs"][key] = {"label": label, "teacher": teacher_preset, "student": student_preset,
                                 "videos_per_second": best, "all": rates}  # fmt: skip
        print(label, json.dumps(best), flush=True)
        del models, functions
    common._write_json(os.path.join(root, "results.json"), results)
    print()
    print(e2e_report(args, results))


def e2e_report(args, r: dict) -> str:
    names = list(E2E_SOURCES)  # not the JSON's order: it is written with sorted keys
    short = ["teacher, full", "student, compact", "student, full (stored view)", "student, full (cut)"]
    lines = [
        f"Videos/s, best of {args.reps}, {r['videos']} synthetic {args.frames}-frame videos, batch "
        f"{args.batch_size}, TFRecord through `trainer.inputs` (tf.data, parse, decode float16, pad, "
        f"view) + the model; page cache warm. Dataset bytes: full view {r['sizes']['full'] / 1e6:.0f} MB, "
        f"compact {args.view} {r['sizes']['compact'] / 1e6:.0f} MB "
        f"({r['sizes']['compact'] / r['sizes']['full']:.3f}×).",
        "",
        "| model | " + " | ".join(short) + " | **student compact / teacher full** "
        "| student compact / student full (cut) |",
        "| --- | " + " | ".join("---" for _ in short) + " | --- | --- |",
        "| input only (read + parse) | "
        + " | ".join(f"{r['input_only'][n]:.0f}" for n in names)
        + f" | {r['input_only'][names[1]] / r['input_only'][names[0]]:.1f} "
        f"| {r['input_only'][names[1]] / r['input_only'][names[3]]:.1f} |",
    ]
    for p in r["pairs"].values():
        v = p["videos_per_second"]
        pair = p["teacher"] if p["teacher"] == p["student"] else f"{p['teacher']} → {p['student']}"
        lines.append(
            f"| {p['label']} (`{pair}`) | "
            + " | ".join(f"{v[n]:.1f}" for n in names)
            + f" | **{v[names[1]] / v[names[0]]:.1f}** | {v[names[1]] / v[names[3]]:.1f} |"
        )
    return "\n".join(lines)


# ===== command line =========================================================================
def build_parser() -> argparse.ArgumentParser:
    e = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--pairs", default="hlstm,dbof,mean")
    e.add_argument("--view", default="every_n:10")
    e.add_argument("--videos", type=int, default=320)
    e.add_argument("--frames", type=int, default=300)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--reps", type=int, default=3)
    e.add_argument("--workdir", default=common.DEFAULT_WORKDIR)
    return e


def main(argv=None) -> None:
    e2e(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
