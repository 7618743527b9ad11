"""Offline vs online serial distillation at the demo's settings: accuracy and training time.

    .venv/bin/python benchmarks/offline_quality.py [--workdir /tmp/fewframes-offline-quality] \
        [--seeds 1,2,3]

Runs `fewframes demo` in --workdir (or reuses a finished one), which trains the teacher,
the plain student and the offline-distilled student. Then, for each seed, trains the
same serial student twice through `trainer.task`: online (`--train` the full-view
dataset, `--teacher-dir`: the teacher re-run at every step) and offline (`--targets`
the demo's teacher-targets dataset). Both are deterministic functions of the seed, but
the two datasets store the videos in different orders, so the runs see different
batches: their GAPs agree in distribution, not run by run. Reports each run's GAP (the
job's own eval on the validate dataset after the last epoch) and training seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/fewframes-offline-quality")
    p.add_argument("--seeds", default="1,2,3", help="seeds of the extra online/offline pairs")
    return p.parse_args(argv)


def train(runner, source: list[str] | None, job: str, seed: int) -> dict:
    """The demo's distilled-student job from `source`, at `seed`."""
    from trainer.task import train_from_argv

    shutil.rmtree(job, ignore_errors=True)
    flags = [*runner.distillation_flags(runner.path("jobs", "teacher")), "--seed", str(seed)]
    summary = train_from_argv(runner.train_argv(job, "serial", flags, source=source), verbose=0)
    return {"gap": summary["metrics"]["val_student_gap"], "seconds": summary["seconds"]}


def main(argv=None) -> int:
    from pipelines import demo

    args = parse_args(argv)
    root = os.path.join(args.workdir, "demo")
    if demo.run(["--workdir", root, "--bootstrap", "50"]) != 0:
        return 1
    demo_args = demo.build_parser().parse_args(["--workdir", root])
    runner = demo.Demo(demo_args)
    jobs = runner.path("jobs")
    alone = json.load(open(os.path.join(jobs, "student", "summary.json")))["metrics"]["val_student_gap"]
    # Online reads the full-view dataset (train_argv's default source) and runs the teacher.
    sources = {"online": None, "offline": ["--targets", runner.path("datasets", "train-targets")]}
    runs = {"online": {}, "offline": {}}
    for seed in [demo.SEED] + [int(s) for s in args.seeds.split(",")]:
        for kind, source in sources.items():
            if kind == "offline" and seed == demo.SEED:  # the demo's own distilled student
                summary = json.load(open(os.path.join(jobs, "student-distilled", "summary.json")))
                metrics = summary["metrics"]
                runs[kind][seed] = {"gap": metrics["val_student_gap"], "seconds": summary["seconds"]}
            else:
                job = os.path.join(args.workdir, "jobs", f"{kind}-{seed}")
                runs[kind][seed] = train(runner, source, job, seed)
        print(f"seed {seed}: online {runs['online'][seed]}, offline {runs['offline'][seed]}", flush=True)

    results = {kind: {str(seed): run for seed, run in by_seed.items()} for kind, by_seed in runs.items()}
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump({"student_alone_gap": alone, **results}, f, indent=2)
    print(f"\nDemo settings ({demo_args.teacher} teacher, {demo_args.student} student, every_n:10, "
          f"{demo_args.epochs} epochs); student without distillation: GAP {alone:.4f}.\n")  # fmt: skip
    print("| seed | online serial GAP | offline `--targets` GAP | online training s | offline training s |")
    print("| --- | --- | --- | --- | --- |")
    for seed in runs["online"]:
        on, off = runs["online"][seed], runs["offline"][seed]
        print(f"| {seed} | {on['gap']:.4f} | {off['gap']:.4f} | {on['seconds']:.1f} | {off['seconds']:.1f} |")
    on = [r["gap"] for r in runs["online"].values()]
    off = [r["gap"] for r in runs["offline"].values()]
    on_s = statistics.median(r["seconds"] for r in runs["online"].values())
    off_s = statistics.median(r["seconds"] for r in runs["offline"].values())
    print(f"| mean ± std | {statistics.mean(on):.4f} ± {statistics.stdev(on):.4f} "
          f"| {statistics.mean(off):.4f} ± {statistics.stdev(off):.4f} | {on_s:.1f} (median) "
          f"| {off_s:.1f} (median): **{on_s / off_s:.1f}×** |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
