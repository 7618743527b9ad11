"""The adaptive frame budget: a cascade's GAP and mAP against frames and model time on
held-out videos (issue 23).

    .venv/bin/python benchmarks/cascade.py [--workdir /tmp/fewframes-cascade] \
        [--train-seeds 7,8,9] [--seeds 1] [--videos 2400] [--train-videos 1200]

For each training seed T, runs `fewframes demo --seed T` in --workdir/demo-seedT (or
reuses a finished one): its teacher (all frames), plain student (every_n:10), distilled
student (every_n:10) and every_n:30 student, trained on videos generated with seed T
(--train-videos of them: the demo's 1,200 by default).
Each model is evaluated once with the Beam job on --videos validate videos of the demo's
seed (generated; the demo's own 400 are the first of them, and no model trained on any)
(videos.parquet and metrics.json per model). Model times per video, for the time axis,
`--cost time` and goal 3, are the fastest of five further evaluation jobs per model
(the four models and the demo's cascade interleaved in each round; on a shared host
other work only adds time, so the minimum is the least disturbed figure).
Then, for each split seed, the validate videos are split at random into a calibration
half and a disjoint held-out half. On the calibration half the threshold search
(`pipelines.scoring.cascade.search_thresholds`) fits the cascade every_n:30 student ->
distilled student -> teacher; every number below is measured on the held-out half:

- the cascade's frames, model time, GAP and mAP for each target R (rule top1, cost
  frames): the curve, beside every fixed view's point;
- goal 1: at every fixed view's frame budget (and, separately, its model-time budget),
  the calibration point of highest GAP within that budget has held-out GAP >= the best
  fixed view within it;
- goal 2: R = 0.99 gives >= 0.99 x the teacher's GAP at <= 25 % of its frames;
- `--cost time` beside `--cost frames` at R = 0.99: the cost is each stage's model time
  per video, measured once (the stage's own evaluation job), summed over the stages a
  video went through;
- the exit rules side by side;
- goal 3: the Beam cascade's throughput (`evaluate --model CASCADE_DIR`, the demo's
  cascade fitted on the first validate shard, all validate videos) is within 20 % of
  1 / sum over stages (share of videos entering x the stage's model time per video,
  measured alone); both sides are model time, Beam's own overhead is not in either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BUDGETS = (0.04, 0.06, 0.08, 0.15, 0.25, 0.5)  # frames read, as shares of the teacher's
TARGETS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 1.0)
STAGES = ("student-30", "student-distilled", "teacher")  # coarse to fine
FIXED = ("student-30", "student", "student-distilled", "teacher")
TIMING_REPEATS = 5
# Validate videos per training seed, split in halves: 1,200 held-out videos, where the demo's
# 400 gave 200 (whose GAP varies more between splits than the cascade's gains).
VIDEOS = 2400
DEMO_VIDEOS = 1200  # the demo's default --videos


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/fewframes-cascade")
    p.add_argument("--train-seeds", default="7,8,9", help="demo seeds: the videos and every training job")
    p.add_argument("--train-videos", type=int, default=DEMO_VIDEOS, help="the demo's training videos")
    p.add_argument("--videos", type=int, default=VIDEOS, help="validate videos split into the two halves")
    p.add_argument("--timing-repeats", type=int, default=TIMING_REPEATS, help="evaluation jobs per model")
    p.add_argument("--seeds", default="1", help="calibration / held-out split seeds, per training seed")
    return p.parse_args(argv)


def evaluate(runner, name: str, model: str, videos: int | None = None) -> tuple[dict, list[dict]]:
    """metrics.json and videos.parquet of `model` on the demo's raw validate shards, or on
    `videos` validate videos of the demo's seed (`validate_shards`) (cached)."""
    import pyarrow.parquet as pq

    from pipelines.synth import VOCABULARY_FILE

    output = runner.path("eval" if videos is None else f"eval-validate-{videos}", name)
    if not os.path.exists(os.path.join(output, "metrics.json")):
        from pipelines.scoring import job

        inputs = None if videos is None else validate_shards(runner, videos)
        extra = ("--no-report", "--vocabulary", runner.path("raw", VOCABULARY_FILE))
        job.run(runner.evaluate_argv(model, output, inputs, extra))
    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    return metrics, pq.read_table(os.path.join(output, "videos.parquet")).to_pylist()


def validate_shards(runner, videos: int) -> str:
    """`videos` validate videos of the demo's seed, classes and lengths (generated once). The
    generator draws each video from its (partition, index) alone, so the first of them are
    the demo's own validate videos; no model trained on any of them."""
    from pipelines.synth import SynthConfig, generate

    directory = runner.path(f"raw-validate-{videos}")
    if not os.path.exists(os.path.join(directory, ".done")):
        args = runner.args
        low, high = (int(x) for x in args.frames.split(":"))
        config = SynthConfig(kind="frame", videos=videos, shards=4, classes=args.classes, seed=args.seed,
                             min_frames=low, max_frames=high, partition="validate")  # fmt: skip
        generate(directory, config, progress=False)
        open(os.path.join(directory, ".done"), "w").close()
    return os.path.join(directory, "validate*.tfrecord")


@dataclasses.dataclass
class Models:
    """One training seed's demo: every model's held-in records and its model time per video."""

    seed: int
    runner: object
    records: dict  # name -> {id: VIDEO_SCHEMA record}
    seconds: dict  # name -> model seconds per video, measured alone
    num_classes: int
    top_k: int


def train_models(workdir: str, seed: int, timing_repeats: int, videos: int, train_videos: int) -> Models:
    from pipelines import demo

    sizes = [] if train_videos == DEMO_VIDEOS else ["--videos", str(train_videos)]
    root = os.path.join(workdir, f"demo-seed{seed}" + (f"-v{train_videos}" if sizes else ""))
    argv = ["--workdir", root, "--seed", str(seed), *sizes]
    if demo.run([*argv, "--bootstrap", "50"]) != 0:
        raise SystemExit(f"the demo of seed {seed} failed")
    runner = demo.Demo(demo.build_parser().parse_args(argv))
    records = {}
    for name in FIXED:
        metrics, rows = evaluate(runner, name, runner.path("jobs", name), videos)
        records[name] = {r["id"]: r for r in rows}
    seconds = model_seconds(
        runner,
        {**{n: runner.path("jobs", n) for n in FIXED}, "cascade": runner.path("cascade")},
        timing_repeats,
    )
    return Models(seed, runner, records, seconds, metrics["model"]["num_classes"], metrics["top_k"])


def model_seconds(runner, models: dict, repeats: int = TIMING_REPEATS) -> dict:
    """Each model's model seconds per video on the validate shards: the fastest of `repeats`
    evaluation jobs, the models interleaved within each repetition (cached in timing-REPEATS.json)."""
    from pipelines.scoring import job

    path = runner.path("eval-timing", f"timing-{repeats}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    seen = {name: [] for name in models}
    for repeat in range(repeats):
        for name, model in models.items():
            output = runner.path("eval-timing", f"{name}-{repeat}")
            job.run(runner.evaluate_argv(model, output, extra=("--no-report", "--overwrite")))
            with open(os.path.join(output, "metrics.json")) as f:
                seen[name].append(json.load(f)["timing"]["model_seconds_per_video"])
    seconds = {name: min(values) for name, values in seen.items()}
    with open(path, "w") as f:
        json.dump(seconds, f, indent=2)
    return seconds


def quality(models: Models, ids, chosen: list[str]) -> dict:
    """GAP and mAP (classes with positives) of the videos `ids`, each scored by the model
    named in `chosen` (a fixed model, or the stage a cascade video exited at)."""
    from trainer.metrics import MetricsAccumulator, ScoredVideos

    rows = [models.records[name][i] for i, name in zip(ids, chosen, strict=True)]
    scored = ScoredVideos.from_entries(
        [r["top_classes"] for r in rows],
        [r["top_scores"] for r in rows],
        [r["perr"] for r in rows],
        [len(r["labels"]) for r in rows],
        [c for r in rows for c in r["labels"]],
    )
    result = MetricsAccumulator(models.num_classes, models.top_k).add_scored(scored).result()
    return {"gap": result["gap"], "map": result["map_nonempty_classes"]}


def measure(models: Models, stages, scores, thresholds, teacher: dict) -> dict:
    """Held-out frames and model time (shares of the teacher's), GAP and mAP of a threshold vector."""
    from pipelines.scoring import cascade as C

    exits = C.exit_stage(scores, thresholds)
    rows = np.arange(stages.num_videos)
    time = C.time_matrix([models.seconds[n] for n in STAGES], stages.num_videos)
    point = quality(models, stages.ids, [STAGES[e] for e in exits])
    return {
        "frames": float(stages.frames[rows, exits].mean()) / teacher["frames"],
        "time": float(time[rows, exits].mean()) / teacher["time"],
        **point,
        "exits": np.bincount(exits, minlength=len(STAGES)).tolist(),
    }


def within(
    budget: float, axis: str, calibration_points, cal_teacher: float, measure_test, one_se=None
) -> dict:
    """The calibration point of highest GAP costing at most `budget` (a share of the teacher's
    frames or model time, `axis`), measured on the held-out videos. With `one_se` (the
    calibration videos' `OneStandardError`), a point that mixes stages must beat the best
    point that exits every video at one stage by more than one bootstrap standard error of
    their difference, else that single-stage point is taken (the one-standard-error rule
    of model selection: thresholds fitted on a few hundred videos otherwise chase noise)."""
    cost = {"frames": lambda p: p.mean_frames, "time": lambda p: p.mean_cost}[axis]
    affordable = [p for p in calibration_points if cost(p) <= budget * cal_teacher + 1e-12]
    # Costs differ a little between the halves: below the cheapest point, take it.
    affordable = affordable or [min(calibration_points, key=cost)]
    chosen = max(affordable, key=lambda p: (p.gap, -cost(p)))
    single = [p for p in affordable if max(p.exits) == sum(p.exits)]
    if one_se is not None and single and max(chosen.exits) != sum(chosen.exits):
        fallback = max(single, key=lambda p: (p.gap, -cost(p)))
        if not one_se.beats(chosen.thresholds, fallback.thresholds):
            chosen = fallback
    return {"budget": budget, **measure_test(chosen.thresholds)}


class OneStandardError:
    """Paired bootstrap of the calibration videos: does one threshold vector's GAP beat
    another's by more than one standard error of the difference?"""

    def __init__(self, stages, scores, positives: np.ndarray, resamples: int = 200, seed: int = 0):
        self.stages, self.scores, self.positives = stages, scores, positives
        rng = np.random.default_rng(seed)
        self.draws = [rng.integers(0, stages.num_videos, stages.num_videos) for _ in range(resamples)]

    def _gaps(self, thresholds) -> np.ndarray:
        from pipelines.scoring import cascade as C
        from trainer.metrics import average_precision

        exits = C.exit_stage(self.scores, thresholds)
        rows = np.arange(self.stages.num_videos)
        scores, is_label = self.stages.scores[exits, rows], self.stages.is_label[exits, rows]
        return np.array(
            [
                average_precision(
                    scores[d].reshape(-1), is_label[d].reshape(-1), int(self.positives[d].sum())
                )
                for d in self.draws
            ]
        )

    def beats(self, thresholds, other) -> bool:
        difference = self._gaps(thresholds) - self._gaps(other)
        return bool(difference.mean() > difference.std(ddof=1))


def split(models: Models, split_seed: int) -> dict:
    from pipelines.scoring import cascade as C
    from schemas.views import View

    views = [View.parse(_view_of(n)) for n in STAGES]
    ids = np.array(sorted(set.intersection(*(set(models.records[n]) for n in FIXED))))
    order = np.random.default_rng(split_seed).permutation(len(ids))
    halves = {"calibration": set(ids[order[: len(ids) // 2]]), "held_out": set(ids[order[len(ids) // 2 :]])}

    def scores_of(half):
        return C.StageScores.from_records(
            views, [[r for i, r in models.records[n].items() if i in halves[half]] for n in STAGES]
        )

    cal, test = scores_of("calibration"), scores_of("held_out")
    cal_positives = np.array([len(models.records[STAGES[-1]][i]["labels"]) for i in cal.ids])
    seconds = [models.seconds[n] for n in STAGES]
    time_cost = C.time_matrix(seconds, cal.num_videos)
    teacher = {"frames": float(test.frames[:, -1].mean()), "time": seconds[-1]}
    cal_teacher = {"frames": float(cal.frames[:, -1].mean()), "time": seconds[-1]}
    fixed, cal_share = {}, {}
    for name in FIXED:
        view = View.parse(_view_of(name))
        # The same budget on the calibration half: the view's share of its frames there.
        cal_share[name] = {
            "frames": float(C.frames_matrix([view], cal.num_frames)[:, 0].mean()) / cal_teacher["frames"],
            "time": models.seconds[name] / cal_teacher["time"],
        }
        frames = C.frames_matrix([view], test.num_frames)[:, 0].mean()
        fixed[name] = {
            "view": str(view),
            "frames": float(frames) / teacher["frames"],
            "time": models.seconds[name] / teacher["time"],
            **quality(models, test.ids, [name] * test.num_videos),
        }

    result = {"train_seed": models.seed, "split_seed": split_seed, "fixed": fixed, "videos": test.num_videos}
    result["teacher"] = fixed["teacher"]
    rules = {}
    for rule_name in C.RULES:
        rule = C.ExitRule(rule_name, gates=C.fit_gates(cal) if rule_name == C.RULE_GATE else ())
        cal_scores, test_scores = C.exit_scores(rule, cal), C.exit_scores(rule, test)

        def measure_test(thresholds, test_scores=test_scores):
            return measure(models, test, test_scores, thresholds, teacher)

        by_cost = {}
        for cost_name, cost in (("frames", None), ("time", time_cost)):
            fitted = C.search_thresholds(cal, cal_scores, 0.99, cost=cost)
            by_cost[cost_name] = measure_test(fitted.best.thresholds)
        # Every threshold vector, each with its mean frames and (the cost here) its mean
        # model time: the exhaustive search evaluates them all, whatever the target.
        everything = C.search_thresholds(cal, cal_scores, 1.0, cost=time_cost)
        assert everything.method == "exhaustive", everything.method
        frame_points = time_points = everything.points
        rules[rule_name] = {
            "at_99": by_cost,
            "within_every_n_10": within(
                fixed["student-distilled"]["frames"],
                "frames",
                frame_points,
                cal_teacher["frames"],
                measure_test,
            ),
        }
        if rule_name != C.RULE_TOP1:
            continue
        one_se = OneStandardError(cal, cal_scores, cal_positives)
        result["curve"] = [
            {"target": t, **measure_test(C.search_thresholds(cal, cal_scores, t).best.thresholds)}
            for t in TARGETS
        ]
        budgets = sorted({*BUDGETS, *(p["frames"] for p in fixed.values())})
        result["budget_curve"] = [
            within(b, "frames", frame_points, cal_teacher["frames"], measure_test) for b in budgets
        ]
        result["goal1"] = {
            f"{axis}{suffix}": [
                {
                    "fixed": name,
                    "budget": point[axis],
                    "best_fixed": max(p["gap"] for p in fixed.values() if p[axis] <= point[axis] + 1e-12),
                    "cascade": within(
                        cal_share[name][axis], axis, points, cal_teacher[axis], measure_test, rule
                    )["gap"],
                }
                for name, point in fixed.items()
            ]
            for axis, points in (("frames", frame_points), ("time", time_points))
            for suffix, rule in (("", None), (", one-standard-error rule", one_se))
        }
    result["rules"] = rules
    return result


def _view_of(name: str) -> str:
    from pipelines import demo

    views = {"student-30": demo.COARSE_VIEW, "student": demo.VIEW, "student-distilled": demo.VIEW}
    return views.get(name, "all")


def throughput(models: Models) -> dict:
    """Goal 3: the Beam cascade's model time per video against the stages' own times (all
    measured side by side, `model_seconds`)."""
    metrics, _ = evaluate(models.runner, "cascade", models.runner.path("cascade"))
    entering = [s["videos_entering"] / metrics["num_videos"] for s in metrics["cascade"]["stages"]]
    predicted = 1.0 / sum(share * models.seconds[n] for share, n in zip(entering, STAGES, strict=True))
    return {"predicted": predicted, "measured": 1.0 / models.seconds["cascade"]}


def _cell(p: dict) -> str:
    return f"{p['frames']:.1%} / {p['time']:.1%} / {p['gap']:.4f} / {p['map']:.4f}"


def report(results: list[dict], speeds: dict) -> None:
    heads = [f"T{r['train_seed']} s{r['split_seed']}" for r in results]
    print("\nHeld-out frames / model time (shares of the teacher's) / GAP / mAP, rule top1, cost frames:\n")
    print("| target R | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(results))
    for i, target in enumerate(TARGETS):
        print(f"| {target} | " + " | ".join(_cell(r["curve"][i]) for r in results) + " |")
    for name in FIXED:
        view = results[0]["fixed"][name]["view"]
        print(f"| {name} ({view}) alone | " + " | ".join(_cell(r["fixed"][name]) for r in results) + " |")

    print("\nWithin a frame budget (share of the teacher's frames; the calibration point of highest GAP):\n")
    print("| budget | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(results))
    for i in range(len(results[0]["budget_curve"])):
        budget = results[0]["budget_curve"][i]["budget"]
        print(f"| {budget:.1%} | " + " | ".join(_cell(r["budget_curve"][i]) for r in results) + " |")

    for axis in results[0]["goal1"]:
        print(
            f"\nGoal 1 ({axis}): the cascade within each fixed view's budget >= the best fixed one within it:"
        )
        met = 0
        for r, head in zip(results, heads, strict=True):
            checks = r["goal1"][axis]
            held = all(c["cascade"] >= c["best_fixed"] for c in checks)
            met += held
            cells = "; ".join(f"{c['fixed']} {c['budget']:.1%}: {c['best_fixed']:.4f} vs {c['cascade']:.4f}"
                              for c in checks)  # fmt: skip
            print(f"  {head}: {'met' if held else 'NOT met'}; {cells}")
        print(f"  met in {met} of {len(results)}")

    print("\nGoal 2 (R = 0.99, cost frames: >= 0.99 x teacher GAP at <= 25% of its frames):")
    ratios = []
    for r, head in zip(results, heads, strict=True):
        at = r["rules"]["top1"]["at_99"]["frames"]
        ratios.append(at["gap"] / r["teacher"]["gap"])
        met = ratios[-1] >= 0.99 and at["frames"] <= 0.25
        verdict = "met" if met else "NOT met"
        print(f"  {head}: {ratios[-1]:.4f} x teacher GAP at {at['frames']:.1%} of its frames: {verdict}")
    print(f"  mean ratio {statistics.mean(ratios):.4f}")

    print("\nR = 0.99 by cost and exit rule, held-out means over the columns (frames and time as shares "
          "of the teacher's; GAP and mAP over the teacher's):\n")  # fmt: skip
    print("| rule | cost | frames | model time | GAP / teacher | mAP / teacher | exits per stage "
          "| GAP within every_n:10 frames |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rule in results[0]["rules"]:
        for cost in ("frames", "time"):
            points = [r["rules"][rule]["at_99"][cost] for r in results]
            mean = {k: statistics.mean(p[k] for p in points) for k in ("frames", "time")}
            pairs = list(zip(points, results, strict=True))
            gap = statistics.mean(p["gap"] / r["teacher"]["gap"] for p, r in pairs)
            map_ = statistics.mean(p["map"] / r["teacher"]["map"] for p, r in pairs)
            exits = np.mean([p["exits"] for p in points], axis=0)
            within_gap = statistics.mean(r["rules"][rule]["within_every_n_10"]["gap"] for r in results)
            print(f"| {rule} | {cost} | {mean['frames']:.1%} | {mean['time']:.1%} | {gap:.4f} | {map_:.4f} | "
                  f"{' / '.join(f'{e:.0f}' for e in exits)} | {within_gap:.4f} |")  # fmt: skip

    print("\nGoal 3 (the Beam cascade's model-time throughput within 20% of the stages' prediction):")
    for seed, s in speeds.items():
        off = s["measured"] / s["predicted"] - 1
        print(f"  T{seed}: {s['measured']:.0f} videos/s, predicted {s['predicted']:.0f} ({off:+.1%}): "
              f"{'met' if abs(off) <= 0.2 else 'NOT met'}")  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    results, speeds = [], {}
    for train_seed in [int(s) for s in args.train_seeds.split(",")]:
        models = train_models(args.workdir, train_seed, args.timing_repeats, args.videos, args.train_videos)
        for split_seed in [int(s) for s in args.seeds.split(",")]:
            results.append(split(models, split_seed))
            print(f"T{train_seed} s{split_seed}: {results[-1]['videos']} held-out videos, "
                  f"teacher GAP {results[-1]['teacher']['gap']:.4f}", flush=True)  # fmt: skip
        speeds[train_seed] = throughput(models)
    name = "results.json" if args.train_videos == DEMO_VIDEOS else f"results-v{args.train_videos}.json"
    with open(os.path.join(args.workdir, name), "w") as f:
        json.dump({"splits": results, "throughput": speeds}, f, indent=2)
    report(results, speeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
