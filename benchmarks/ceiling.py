"""What synthetic data lets a model reach through a view: a scorer that knows the generator.

The quality benchmark compares trained students with trained teachers. Whether a
student on every 10th frame *can* come within 1 % of a teacher depends on the data as
much as on distillation: a label whose window holds none of the view's frames is
invisible to any student. This module measures that limit on the same videos:

* unseen labels: the share of the eval partition's labels whose window (the frames
  where the generator added the label's signal) holds no frame of the view.
* the known-prototype scorer: for each class, the frames of the view projected on the
  class's signal direction (which no trained model is given); its features are the
  highest mean projection over any placement of the class's window (the generator's
  window length for that class and video length) and the median projection (the
  video's offset along that direction); a logistic regression per class, fitted on the
  train partition, turns them into scores. It is a matched filter, not the Bayes
  posterior, so its GAP estimates what the view's frames hold rather than bounding it;
  its ratio view / all frames is the "ceiling" the report sets beside the trained
  students' ratios.

    .venv/bin/python benchmarks/ceiling.py [--views every_n:10,every_n:30] [--seeds 0,1,2] \
        [--min-window-frames N] [--frame-model shots|iid] [--noise-correlation R (iid only)]

`benchmarks/train_quality.py` runs it on each seed's data and reports it with the
trained models.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pipelines import synth  # noqa: E402
from schemas import features as F  # noqa: E402
from schemas.quantization import dequantize  # noqa: E402
from schemas.views import View  # noqa: E402
from trainer.metrics import MetricsAccumulator  # noqa: E402

ALL_FRAMES = "all"
# Newton steps and ridge of the per-class logistic regression (3 features + intercept).
_NEWTON_STEPS = 30
_RIDGE = 1e-3


@dataclasses.dataclass
class ViewEvidence:
    """Per video and class, what the known-prototype scorer reads from one view's frames."""

    features: np.ndarray  # float64 [N, C, 3]: best window mean, median, their difference
    labels: np.ndarray  # float64 [N, C] multi-hot
    unseen_labels: int  # labels whose window holds no frame of the view
    total_labels: int


def _window_means(projections: np.ndarray, kept: np.ndarray, num_frames: int, length: int) -> np.ndarray:
    """Mean projection of the kept frames inside each placement [s, s + length) of a window.

    projections [n] over the kept frames `kept` (ascending); placements without a kept
    frame give -inf (no evidence).
    """
    starts = np.arange(num_frames - length + 1)
    lo = np.searchsorted(kept, starts, side="left")
    hi = np.searchsorted(kept, starts + length, side="left")
    sums = np.concatenate([[0.0], np.cumsum(projections, dtype=np.float64)])
    counts = hi - lo
    return np.where(counts > 0, (sums[hi] - sums[lo]) / np.maximum(counts, 1), -np.inf)


def view_evidence(config: synth.SynthConfig, views: dict[str, View | None]) -> dict[str, ViewEvidence]:
    """The scorer's features for every video of `config`, for each view (None = all frames)."""
    synthesizer = synth.VideoSynthesizer(config)
    model = synthesizer.model
    directions = model.signals / np.linalg.norm(model.signals, axis=1, keepdims=True)
    rng = np.random.default_rng(config.seed)  # random:K views draw their frames from it
    classes = model.classes
    out = {
        name: ViewEvidence(np.zeros((config.videos, classes, 3)), np.zeros((config.videos, classes)), 0, 0)
        for name in views
    }
    for index in range(config.videos):
        video = synthesizer.video(index)
        num_frames = min(video.num_frames, F.MAX_FRAMES)  # what the readers keep
        frames = dequantize(np.concatenate([video.rgb, video.audio], axis=1)[:num_frames])
        projections = frames @ directions.T  # [T, C]
        lengths = synth.window_lengths(model.window_fractions, num_frames, config.min_window_frames)
        for name, view in views.items():
            kept = np.arange(num_frames) if view is None else view.frame_indices(num_frames, rng)
            evidence = out[name]
            for c in range(classes):
                best = _window_means(projections[kept, c], kept, num_frames, int(lengths[c])).max()
                median = float(np.median(projections[kept, c]))
                evidence.features[index, c] = (best, median, best - median)
            evidence.labels[index, video.labels] = 1.0
            for start, end in video.windows:
                evidence.total_labels += 1
                evidence.unseen_labels += not np.any((kept >= start) & (kept < end))
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge logistic regression by Newton's method on standardised features."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    design = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    weights = np.zeros(design.shape[1])
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (p - y) + _RIDGE * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + _RIDGE * np.eye(len(weights))
        weights -= np.linalg.solve(hessian, gradient)
    return mean, scale, weights


def calibrated_scores(train: ViewEvidence, evaluate: ViewEvidence) -> np.ndarray:
    """[N_eval, C] probabilities: one logistic regression per class, fitted on `train`."""
    scores = np.zeros(evaluate.labels.shape)
    for c in range(train.labels.shape[1]):
        # The best window mean is finite: the placement starting at min(first kept
        # frame, T - length) always holds a kept frame.
        x_train, x_eval = train.features[:, c], evaluate.features[:, c]
        y = train.labels[:, c]
        if y.min() == y.max():  # a class never (or always) seen in training: its frequency
            scores[:, c] = y.mean()
            continue
        mean, scale, weights = _fit_logistic(x_train, y)
        design = np.column_stack([(x_eval - mean) / scale, np.ones(len(x_eval))])
        scores[:, c] = 1.0 / (1.0 + np.exp(-design @ weights))
    return scores


def ceiling(train: synth.SynthConfig, evaluate: synth.SynthConfig, views: list[str]) -> dict:
    """{ALL_FRAMES: {"gap"}, view: {"gap", "ratio", "unseen_labels"}} on `evaluate`'s videos."""
    parsed: dict[str, View | None] = {ALL_FRAMES: None, **{v: View.parse(v) for v in views}}
    train_evidence = view_evidence(train, parsed)
    eval_evidence = view_evidence(evaluate, parsed)
    result = {}
    for name in parsed:
        scores = calibrated_scores(train_evidence[name], eval_evidence[name])
        metrics = MetricsAccumulator(scores.shape[1]).add_batch(scores, eval_evidence[name].labels).result()
        evidence = eval_evidence[name]
        result[name] = {
            "gap": metrics["gap"],
            "unseen_labels": evidence.unseen_labels / max(evidence.total_labels, 1),
        }
    for name in views:
        result[name]["ratio"] = result[name]["gap"] / result[ALL_FRAMES]["gap"]
    return result


def report(per_seed: list[dict], views: list[str]) -> str:
    def pm(values):
        mean = statistics.fmean(values)
        return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"

    lines = [
        "| view | labels with no frame in the view | known-prototype GAP, all frames | view "
        "| view / all frames |",
        "| --- | --- | --- | --- | --- |",
    ]
    for view in views:
        lines.append(
            f"| {view} | {pm([r[view]['unseen_labels'] for r in per_seed])} "
            f"| {pm([r[ALL_FRAMES]['gap'] for r in per_seed])} | {pm([r[view]['gap'] for r in per_seed])} "
            f"| {pm([r[view]['ratio'] for r in per_seed])} |"
        )
    return "\n".join(lines)


def partitions(seed: int, args) -> tuple[dict, dict]:
    """The `SynthConfig` fields of the train and validate partitions of `seed`, as
    `benchmarks/train_quality.py` generates them (its dataset stamps hold these dicts)."""
    min_frames, max_frames = (int(x) for x in args.frames.split(":"))
    common = {"kind": "frame", "classes": args.classes, "min_frames": min_frames, "max_frames": max_frames}
    # Generator options only when given: earlier datasets' stamps then still match.
    if args.min_window_frames is not None:
        common["min_window_frames"] = args.min_window_frames
    if args.noise_correlation is not None:
        common["noise_correlation"] = args.noise_correlation
    # Always stamped: datasets generated before the shot model (the iid frames, with no
    # frame_model field) must not be taken for data of the current default.
    common["frame_model"] = args.frame_model
    train = {**common, "videos": args.videos, "shards": 4, "seed": seed, "partition": "train"}
    validate = {**common, "videos": args.eval_videos, "shards": 2, "seed": seed, "partition": "validate"}
    return train, validate


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data flags shared with `benchmarks/train_quality.py` (same names, same defaults)."""
    parser.add_argument("--videos", type=int, default=1200, help="training videos per seed")
    parser.add_argument("--eval-videos", type=int, default=400, help="validate videos per seed")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--frames", default="30:300", help="MIN:MAX frames per synthetic video")
    parser.add_argument(
        "--min-window-frames",
        type=int,
        default=None,
        help="the generator's shortest label window in frames (default: the generator's, 5)",
    )
    parser.add_argument(
        "--noise-correlation",
        type=float,
        default=None,
        help="the generator's frame-to-frame noise correlation, with --frame-model iid (default 0)",
    )
    parser.add_argument(
        "--frame-model",
        choices=synth.FRAME_MODELS,
        default=synth.SynthConfig().frame_model,
        help="the generator's frame model (default: the generator's, shots)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--views", default="every_n:10,every_n:30,uniform:6,uniform:10")
    parser.add_argument("--seeds", default="0,1,2")
    add_data_arguments(parser)
    args = parser.parse_args(argv)
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    per_seed = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train, validate = partitions(seed, args)
        per_seed.append(ceiling(synth.SynthConfig(**train), synth.SynthConfig(**validate), views))
        print(f"seed {seed}: " + ", ".join(f"{v} {per_seed[-1][v]['ratio']:.3f}" for v in views), flush=True)
    print()
    print(report(per_seed, views))


if __name__ == "__main__":
    main()
