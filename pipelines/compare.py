"""Compare evaluation runs on the same videos, with paired bootstrap confidence intervals.

    python -m pipelines.compare RUN_DIR RUN_DIR [RUN_DIR ...] --output DIR \
        [--labels teacher,every10,...] [--bootstrap 1000] [--confidence 0.95] [--seed 0] [--intersect] \
        [--overwrite]

Each RUN_DIR is a `fewframes evaluate` output (`pipelines.scoring.outputs`); the
first is the reference (e.g. the teacher). Runs must share the class space and top-k
and must have scored the same videos (`--intersect` restricts them to the common
ones). Videos are aligned by id, then resampled with replacement: every resample draws
one set of video indices and every run is scored on those same videos (a paired
bootstrap), giving for each run a percentile interval of GAP, mAP (both conventions),
Hit@1 and PERR, and for each run minus the reference an interval of the difference.
Point estimates are the metrics on all compared videos (`MetricsAccumulator`).

Writes `comparison.csv`, `comparison.json` (one row per run: identity, frames read,
model time per video, each metric with its interval, the difference from the reference
with its interval) and `report.html` (`pipelines.scoring.report`).

Speed: a resample repeats each video a number of times, and the metrics depend only on
the sequence of is-label flags down the pooled (and per-class) ranking. So each run's
entries are sorted once; in a resample every entry is repeated as often as its video
was drawn, and only the positive copies add to the AP sums, so their ranks come from
cumulative sums of the counts: no sort and no full-size copy per resample
(`ResampledMetrics`). The values equal `MetricsAccumulator(...).add_scored(
scored.take(indices)).result()` bit for bit (tested, ties included). On the 2-core
development VM, 1,000 resamples of 5,000 videos x 20 entries (3,862 classes) take
0.6-1.2 s per run (the whole 3-run command ~4.5 s), against 21-38 s per run through
`take` + `MetricsAccumulator` (two lexsorts of the 100,000 entries a resample).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from pipelines.datasets import ownership
from pipelines.runner import UsageError
from pipelines.scoring import outputs as out
from pipelines.scoring import report
from trainer.metrics import MetricsAccumulator, ScoredVideos

_LOG = logging.getLogger("pipelines.compare")  # also under `python -m` (__main__)

METRICS = ("gap", "map_nonempty_classes", "map_all_classes", "hit_at_1", "perr")
COMPARISON_CSV = "comparison.csv"
COMPARISON_JSON = "comparison.json"
OUTPUT_FILES = (COMPARISON_CSV, COMPARISON_JSON, report.COMPARISON_REPORT_FILE)
IDENTITY_COLUMNS = ("label", "path", "role", "preset", "view", "features", "kind")
FACT_COLUMNS = (
    "num_videos",
    "mean_num_frames",
    "mean_frames_read",
    "fraction_read",
    "model_seconds_per_video",
)
METHOD = "paired percentile bootstrap over videos (the same resampled videos for every run)"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2 (through `run`), no usage dump
        raise UsageError(message)


# ----- runs -------------------------------------------------------------------------------------------
class Run:
    """One evaluation output: its metrics.json and its videos (ids, scored entries, facts)."""

    def __init__(self, directory: str, label: str, metrics: dict, videos: pa.Table):
        self.directory, self.label, self.metrics, self.videos = directory, label, metrics, videos

    @classmethod
    def read(cls, directory: str, label: str) -> Run:
        directory = directory.rstrip("/")
        try:
            metrics = out.read_metrics(directory)
        except (OSError, ValueError) as error:
            raise UsageError(_one_line(error)) from None
        missing = [k for k in ("gap", "top_k", "model") if k not in metrics]
        if missing or "num_classes" not in (metrics.get("model") or {}):
            raise UsageError(
                f"{directory} is not an evaluation output ({out.METRICS_FILE} lacks "
                f"{', '.join(missing) or 'model.num_classes'})"
            )
        try:
            videos = out.read_videos(directory)
        except (OSError, ValueError, pa.ArrowException) as error:
            raise UsageError(_one_line(error)) from None
        return cls(directory, label, metrics, videos)

    @property
    def model(self) -> dict:
        return self.metrics.get("model") or {}

    @property
    def num_classes(self) -> int:
        return int(self.model["num_classes"])

    @property
    def top_k(self) -> int:
        return int(self.metrics["top_k"])

    def ids(self) -> pa.Array:
        return self.videos.column("id").combine_chunks()


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def default_labels(directories: Sequence[str]) -> list[str]:
    """Each run's directory name, made unique with its position where names repeat."""
    names = [d.rstrip("/").rsplit("/", 1)[-1] or d for d in directories]
    return [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]


def check_compatible(runs: Sequence[Run]) -> None:
    """The runs share classes, label space and top-k; UsageError naming the first mismatch."""
    first = runs[0]
    for run in runs[1:]:
        if run.num_classes != first.num_classes:
            raise UsageError(
                f"runs have different class counts: {first.label} has {first.num_classes}, "
                f"{run.label} has {run.num_classes}"
            )
        for key in ("label_space", "vocabulary_sha256"):
            a, b = first.model.get(key), run.model.get(key)
            if a is not None and b is not None and a != b:
                raise UsageError(
                    f"runs use different label spaces ({key}): {first.label} has {a}, {run.label} has {b}"
                )
        if run.top_k != first.top_k:
            raise UsageError(
                f"runs kept different top-k: {first.label} {first.top_k}, {run.label} {run.top_k}; "
                "evaluate them with the same --top-k"
            )


def align_videos(runs: Sequence[Run], intersect: bool) -> tuple[list[np.ndarray], pa.Array, dict]:
    """Row positions in each run's table of the compared videos, in the first run's order.

    Returns (positions per run, the compared ids, videos left out per run label). Without
    `intersect` every run must hold exactly the first run's ids.
    """
    ids = [run.ids() for run in runs]
    for run, run_ids in zip(runs, ids, strict=True):
        if len(run_ids) == 0:
            raise UsageError(f"{run.directory} holds no scored videos")
        unique = pc.unique(run_ids)
        if len(unique) != len(run_ids):
            counts = pc.value_counts(run_ids)
            repeated = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"]
            raise UsageError(
                f"{run.directory}: video ids repeat ({len(run_ids) - len(unique)} extra rows, e.g. "
                f"{repeated.as_py()!r}); a comparison needs one row per video"
            )
    common = ids[0]
    for run, run_ids in zip(runs[1:], ids[1:], strict=True):
        missing = int(pc.sum(pc.invert(pc.is_in(ids[0], value_set=run_ids))).as_py() or 0)
        extra = int(pc.sum(pc.invert(pc.is_in(run_ids, value_set=ids[0]))).as_py() or 0)
        if (missing or extra) and not intersect:
            raise UsageError(
                f"runs scored different videos: {run.label} lacks {missing} of the {len(ids[0])} videos "
                f"of {runs[0].label} and has {extra} that {runs[0].label} lacks; compare them on the same "
                "videos, or pass --intersect to use only the videos every run scored"
            )
        common = common.filter(pc.is_in(common, value_set=run_ids))
    if len(common) == 0:
        raise UsageError("the runs have no video in common")
    positions = [pc.index_in(common, value_set=run_ids).to_numpy(zero_copy_only=False) for run_ids in ids]
    dropped = {run.label: len(run_ids) - len(common) for run, run_ids in zip(runs, ids, strict=True)}
    return [p.astype(np.int64) for p in positions], common, dropped


def _check_same_labels(runs: Sequence[Run], scored: Sequence[ScoredVideos], ids: pa.Array) -> None:
    """Aligned videos must carry the same labels in every run (else: other data, not other models)."""
    first = scored[0]
    for run, other in zip(runs[1:], scored[1:], strict=True):
        if np.array_equal(first.num_labels, other.num_labels) and np.array_equal(
            first.labels_flat, other.labels_flat
        ):
            continue
        differ = [
            i
            for i, (a, b) in enumerate(zip(first.labels(), other.labels(), strict=True))
            if not np.array_equal(np.sort(a), np.sort(b))
        ]
        if not differ:  # the same labels in another order
            continue
        raise UsageError(
            f"{run.label} and {runs[0].label} disagree on the labels of {len(differ)} videos "
            f"(e.g. {ids[differ[0]].as_py()!r}); were they scored on the same partition and label space?"
        )


# ----- metrics on resamples ---------------------------------------------------------------------------
def point_metrics(scored: ScoredVideos, num_classes: int, top_k: int) -> dict:
    """GAP, both mAPs, Hit@1 and PERR of these videos, by `MetricsAccumulator`."""
    result = MetricsAccumulator(num_classes, top_k).add_scored(scored).result()
    return {m: result[m] for m in METRICS}


class ResampledMetrics:
    """One run's videos, sorted once, scored on any resample given as per-video counts.

    `metrics(counts)` equals `MetricsAccumulator(num_classes, top_k).add_scored(
    scored.take(indices)).result()` exactly, where `counts = np.bincount(indices,
    minlength=n)`. The pooled ranking of a resample is this run's sorted entries with
    each repeated as often as its video was drawn: equal (score, is-label) keys are
    interchangeable, and the metrics depend only on the is-label sequence. Only the
    positive entries add to the AP sums (a negative adds precision 0.0, which leaves a
    float sum unchanged), so a resample needs each positive copy's rank and count of
    positives so far (from cumulative sums of the counts down the sorted entries), and
    the terms are then the accumulator's own, in the accumulator's order.
    """

    def __init__(self, scored: ScoredVideos, num_classes: int):
        self.num_classes = int(num_classes)
        n, k = scored.classes.shape
        self.num_videos = n
        scores = np.asarray(scored.scores).reshape(-1).astype(np.float64)
        is_label = np.asarray(scored.is_label, dtype=bool).reshape(-1)
        classes = np.asarray(scored.classes, dtype=np.int64).reshape(-1)
        # GAP: entries by score descending, negatives first among equal scores.
        pooled = np.lexsort((is_label, -scores))
        self._pooled_video = pooled // k
        self._pooled_positive = np.nonzero(is_label[pooled])[0]
        # Class APs: entries by class, then as above.
        by_class = np.lexsort((is_label, -scores, classes))
        self._class_video = by_class // k
        sorted_classes = classes[by_class]
        positive = np.nonzero(is_label[by_class])[0]
        self._class_positive = positive
        self._positive_class = sorted_classes[positive]
        # where each positive's class starts: in the sorted entries, and among the positives
        self._class_start = np.searchsorted(sorted_classes, self._positive_class, side="left")
        self._class_first_positive = np.searchsorted(self._positive_class, self._positive_class, side="left")
        self._label_class = np.asarray(scored.labels_flat, dtype=np.int64)
        self._label_video = np.repeat(np.arange(n), np.asarray(scored.num_labels, dtype=np.int64))
        self._hit = is_label.reshape(n, k)[:, 0] if k else np.zeros(n, dtype=bool)
        self._perr = np.asarray(scored.perr, dtype=np.float64)

    def metrics(self, counts: np.ndarray) -> tuple[float, ...]:
        """The `METRICS` values of the resample drawing video v `counts[v]` times."""
        counts = np.asarray(counts, dtype=np.int64)
        drawn = int(counts.sum())
        class_positives = np.bincount(
            self._label_class, weights=counts[self._label_video], minlength=self.num_classes
        ).astype(np.int64)
        num_positives = int(class_positives.sum())

        # GAP: the j-th copy of a positive entry has rank (entries before) + j and
        # (positives before) + j positives up to it.
        weights = counts[self._pooled_video]
        entries_before = np.cumsum(weights)[self._pooled_positive] - weights[self._pooled_positive]
        positive_weights = weights[self._pooled_positive]
        owner, j = _copies(positive_weights)
        positives_before = np.cumsum(positive_weights) - positive_weights
        hits = positives_before[owner] + j
        ranks = entries_before[owner] + j
        gap = float(np.sum(hits / ranks) / num_positives) if num_positives > 0 else 0.0

        # Class APs: the same within each class's run of entries.
        weights = counts[self._class_video]
        before = np.cumsum(weights) - weights  # weighted entries before each sorted entry
        rank_base = before[self._class_positive] - before[self._class_start]
        positive_weights = weights[self._class_positive]
        positives_before = np.cumsum(positive_weights) - positive_weights
        hit_base = positives_before - positives_before[self._class_first_positive]
        owner, j = _copies(positive_weights)
        precision = (hit_base[owner] + j) / (rank_base[owner] + j)
        sums = np.bincount(self._positive_class[owner], weights=precision, minlength=self.num_classes)
        aps = np.zeros(self.num_classes, dtype=np.float64)
        nonempty = class_positives > 0
        aps[nonempty] = sums[nonempty] / class_positives[nonempty]
        return (
            gap,
            float(aps[nonempty].mean()) if nonempty.any() else 0.0,
            float(aps.sum() / self.num_classes),
            int(np.dot(counts, self._hit)) / drawn,
            math.fsum(np.repeat(self._perr, counts).tolist()) / drawn,
        )


def _copies(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For entries repeated `weights` times: each copy's entry and its 1-based copy number."""
    owner = np.repeat(np.arange(weights.size), weights)
    ends = np.cumsum(weights)
    return owner, np.arange(1, owner.size + 1) - (ends - weights)[owner]


def resample_indices(num_videos: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap's resamples: `resamples` arrays of `num_videos` indices drawn with
    replacement, from `np.random.default_rng(seed)`, one after the other."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, num_videos, size=num_videos)


def paired_bootstrap(
    scored: Sequence[ScoredVideos], num_classes: int, resamples: int, seed: int
) -> np.ndarray:
    """`[runs, resamples, len(METRICS)]` metric values, every run on the same resamples."""
    prepared = [ResampledMetrics(s, num_classes) for s in scored]
    n = prepared[0].num_videos
    values = np.zeros((len(prepared), resamples, len(METRICS)), dtype=np.float64)
    for b, indices in enumerate(resample_indices(n, resamples, seed)):
        counts = np.bincount(indices, minlength=n)
        for r, run in enumerate(prepared):
            values[r, b] = run.metrics(counts)
    return values


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis -2 (resamples): (low, high)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=-2)
    return low, high


# ----- the comparison -----------------------------------------------------------------------------------
def compare_runs(
    directories: Sequence[str],
    labels: Sequence[str] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    intersect: bool = False,
) -> dict:
    """Read, check, align and bootstrap the runs; returns what `comparison.json` holds."""
    if len(directories) < 2:
        raise UsageError(f"compare needs at least two evaluation outputs, got {len(directories)}")
    labels = list(labels) if labels else default_labels(directories)
    if len(labels) != len(directories):
        raise UsageError(f"--labels gives {len(labels)} labels for {len(directories)} runs")
    if len(set(labels)) != len(labels):
        raise UsageError(f"--labels must be distinct, got {','.join(labels)}")
    if resamples < 1:
        raise UsageError(f"--bootstrap must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, got {confidence}")
    runs = [Run.read(d, label) for d, label in zip(directories, labels, strict=True)]
    check_compatible(runs)
    positions, ids, dropped = align_videos(runs, intersect)
    num_classes, top_k = runs[0].num_classes, runs[0].top_k
    try:
        scored = [out.scored_from_table(run.videos).take(p) for run, p in zip(runs, positions, strict=True)]
    except ValueError as error:
        raise UsageError(_one_line(error)) from None
    _check_same_labels(runs, scored, ids)
    for run, s in zip(runs, scored, strict=True):
        if s.classes.shape[1] != min(top_k, num_classes):
            raise UsageError(
                f"{run.directory}: {out.VIDEOS_FILE} holds {s.classes.shape[1]} entries a video, "
                f"metrics.json says top_k {top_k}"
            )
    points = np.array([[point_metrics(s, num_classes, top_k)[m] for m in METRICS] for s in scored])
    start = time.perf_counter()
    samples = paired_bootstrap(scored, num_classes, resamples, seed)
    _LOG.info(
        "bootstrap: %d resamples x %d runs x %d videos in %.2fs",
        resamples,
        len(runs),
        len(ids),
        time.perf_counter() - start,
    )
    low, high = percentile_interval(samples, confidence)
    differences = samples - samples[:1]
    diff_low, diff_high = percentile_interval(differences, confidence)
    rows = []
    for r, (run, p) in enumerate(zip(runs, positions, strict=True)):
        row = _identity(run) | _facts(run.videos, p)
        for m, metric in enumerate(METRICS):
            row[metric] = float(points[r, m])
            row[f"{metric}_ci_low"] = float(low[r, m])
            row[f"{metric}_ci_high"] = float(high[r, m])
            row[f"{metric}_diff"] = float(points[r, m] - points[0, m])
            row[f"{metric}_diff_ci_low"] = float(diff_low[r, m])
            row[f"{metric}_diff_ci_high"] = float(diff_high[r, m])
        rows.append(row)
    return {
        "reference": runs[0].label,
        "metrics": list(METRICS),
        "num_videos": len(ids),
        "num_classes": num_classes,
        "top_k": top_k,
        "label_space": runs[0].model.get("label_space"),
        "intersect": intersect,
        "videos_dropped": dropped,
        "bootstrap": {"resamples": resamples, "confidence": confidence, "seed": seed, "method": METHOD},
        "runs": rows,
    }


def _identity(run: Run) -> dict:
    model = run.model
    return {
        "label": run.label,
        "path": run.directory,
        "role": model.get("role"),
        "preset": model.get("preset"),
        "view": model.get("serving_view") or model.get("view"),
        "features": list(model.get("features") or []),
        "kind": model.get("kind"),
    }


def _facts(videos: pa.Table, positions: np.ndarray) -> dict:
    """Frames and model time over the compared videos (all of a run's, unless --intersect)."""
    num_frames = videos.column("num_frames").to_numpy()[positions].astype(np.int64)
    frames_read = videos.column("frames_read").to_numpy()[positions].astype(np.int64)
    seconds = videos.column("model_seconds").to_numpy()[positions].astype(np.float64)
    n = len(positions)
    return {
        "num_videos": n,
        "mean_num_frames": float(num_frames.sum() / n),
        "mean_frames_read": float(frames_read.sum() / n),
        "fraction_read": float(frames_read.sum() / num_frames.sum()) if num_frames.sum() else 0.0,
        "model_seconds_per_video": math.fsum(seconds.tolist()) / n,
    }


def csv_columns() -> list[str]:
    columns = list(IDENTITY_COLUMNS) + list(FACT_COLUMNS)
    for metric in METRICS:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
        columns += [f"{metric}_diff", f"{metric}_diff_ci_low", f"{metric}_diff_ci_high"]
    return columns


def comparison_csv(comparison: dict) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=csv_columns(), lineterminator="\n")
    writer.writeheader()
    for row in comparison["runs"]:
        writer.writerow({**row, "features": "+".join(row["features"])})
    return text.getvalue()


def write_comparison(output: str, comparison: dict) -> dict:
    """Write comparison.csv, comparison.json and report.html; returns their paths."""
    output = output.rstrip("/")
    paths = {name: out.join(output, name) for name in OUTPUT_FILES}
    out.write_bytes(paths[COMPARISON_CSV], comparison_csv(comparison).encode(), "text/csv")
    data = json.dumps(comparison, indent=2, sort_keys=True).encode()
    out.write_bytes(paths[COMPARISON_JSON], data, "application/json")
    report.write_comparison_report(output, comparison)
    return paths


COMPARISON_CLAIMS = ownership.Claims("comparison", files=OUTPUT_FILES)
_NOT_OURS, _HINT = "no comparison wrote", "choose another --output"


def _check_output(output: str, directories: Sequence[str], overwrite: bool) -> None:
    """Refuse an output that is a compared run or that `--overwrite` could not replace
    (`pipelines.datasets.ownership`); deletes nothing (that waits until the comparison is made)."""
    output = output.rstrip("/")
    if output in {d.rstrip("/") for d in directories}:
        raise UsageError(f"--output {output} is one of the compared runs; its report.html would be replaced")
    existing = [name for name in OUTPUT_FILES if FileSystems.exists(out.join(output, name))]
    if existing and not overwrite:
        raise UsageError(f"{output} already holds {', '.join(existing)}; pass --overwrite to replace them")
    ownership.check(output, overwrite, COMPARISON_CLAIMS, _NOT_OURS, _HINT, UsageError)


# ----- command line ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="fewframes compare",
        description="Compare evaluation outputs on the same videos: one table with paired bootstrap "
        "confidence intervals, and plots of GAP/mAP and inference time against frames read. "
        "The first run is the reference for the differences.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="evaluation output dirs, local or gs://")
    parser.add_argument("--output", required=True, help="directory for comparison.csv/.json and report.html")
    parser.add_argument("--labels", help="comma-separated run labels (default: the directory names)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the videos")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples")
    parser.add_argument(
        "--intersect",
        action="store_true",
        help="compare on the videos every run scored, if their sets differ",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --output")
    return parser


def format_summary(comparison: dict, paths: dict, seconds: float) -> str:
    boot = comparison["bootstrap"]
    level = f"{100 * boot['confidence']:g}%"
    lines = [
        f"compared {len(comparison['runs'])} runs on {comparison['num_videos']:,} videos in {seconds:.1f}s "
        f"({boot['resamples']} paired bootstrap resamples, {level} intervals, seed {boot['seed']})"
    ]
    width = max(len(r["label"]) for r in comparison["runs"])
    for row in comparison["runs"]:
        diff = ""
        if row["label"] != comparison["reference"]:
            low, high = row["gap_diff_ci_low"], row["gap_diff_ci_high"]
            diff = f"  ΔGAP {row['gap_diff']:+.4f} [{low:+.4f}, {high:+.4f}]"
        frames = f"frames {row['mean_frames_read']:7.1f} ({100 * row['fraction_read']:5.1f}%)"
        gap = f"GAP {row['gap']:.4f} [{row['gap_ci_low']:.4f}, {row['gap_ci_high']:.4f}]"
        lines.append(
            f"  {row['label']:<{width}}  {frames}  {1000 * row['model_seconds_per_video']:8.3f} ms/video  "
            f"{gap}  mAP {row['map_nonempty_classes']:.4f}{diff}"
        )
    lines.append("  outputs: " + ", ".join(paths.values()))
    return "\n".join(lines)


def run(argv=None) -> int:
    """`fewframes compare ...`: exit status 0, or 2 with a one-line error on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        args = build_parser().parse_args(argv)
        labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
        _check_output(args.output, args.runs, args.overwrite)
        _LOG.info("comparing %d runs: %s -> %s", len(args.runs), ", ".join(args.runs), args.output)
        comparison = compare_runs(
            args.runs, labels, args.bootstrap, args.confidence, args.seed, args.intersect
        )
        ownership.claim(args.output, args.overwrite, COMPARISON_CLAIMS, _NOT_OURS, _HINT, UsageError)
        paths = write_comparison(args.output, comparison)
        ownership.commit(args.output, COMPARISON_CLAIMS)
    except UsageError as error:
        print(f"fewframes compare: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    print(format_summary(comparison, paths, time.perf_counter() - start))
    return 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO)
    return run(argv)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
