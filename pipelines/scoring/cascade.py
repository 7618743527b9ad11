"""A coarse-to-fine cascade of models that stops per video when it is sure.

Stages run coarse to fine (e.g. an `every_n:30` student, an `every_n:10` student, the
teacher on `all` frames). After each stage but the last an exit rule scores every video;
a video whose score reaches the stage's threshold stops with that stage's predictions,
the others go on. This module is the arithmetic of it, in numpy (no Beam, no
TensorFlow): the spec and `cascade.json`, the nesting of views, the exit rules, the
frames a video costs, and the threshold search.

Views must nest: every frame of a stage's view is in the next stage's view, so a frame
decoded for an early stage is never decoded again and a video that exits after stage s
has read exactly the frames of the union of views 0..s (`frames_paid`), counted once.
Nesting is checked on every video length up to `MAX_FRAMES`, which is the definition
itself: `every_n:a` lies in `every_n:b` when b divides a; everything deterministic lies in
`all`; `uniform:K` lies in `uniform:L` when L is an odd multiple of K (the view keeps
frame floor((2i+1)n / 2K), and only an odd ratio maps each of those to a frame of the
finer view: `uniform:10` -> `uniform:20` does not nest, `uniform:10` -> `uniform:30` does).

Exit rules (`RULES`), each a score per video, higher meaning surer; a video exits when
its score is >= the stage's threshold (`None` in cascade.json = never exits there):

- `top1`: the stage's highest class probability;
- `agreement`: the share of this stage's top-`agreement_k` classes that are also in the
  previous stage's top-`agreement_k`. The first stage has no previous stage, so it never
  exits under this rule (with nested views its frames are not paid again later, only its
  model time);
- `gate`: a small logistic model per stage (`Gate`, as FrameExit's gates) on the stage's
  top-`GATE_SCORES` scores and the share of frames read, fitted on the calibration
  partition to predict "this stage's top-1 class is a true label".

The threshold search (`search_thresholds`). GAP pools every video's top-k entries into one
ranking, so it does not decompose into per-video gains; the search therefore evaluates
whole threshold vectors. Each non-last stage s gets a fixed candidate list: the
`grid`-quantiles (q = 0, 1/(grid-1), ..., 1; "lower" method, so every candidate is a
score a calibration video has) of its exit scores, plus `EXIT_ALWAYS` (0: every video
exits, also one scored lower than any calibration video, so that "all exit here" found
on calibration stays so on other videos), deduplicated, plus `None` (never exit). When
the product of the candidate counts is at most `MAX_EXHAUSTIVE`, every vector is
evaluated; otherwise a coordinate search starts from "no stage exits" and, for
s = 0, 1, ..., S-2, replaces threshold s by its best candidate with the others fixed,
repeating these passes until none changes (at most `MAX_PASSES`). "Best" is the lowest
mean cost among vectors with cascade GAP >= target x the last stage's GAP; equal costs
go to the higher GAP, then the smaller thresholds (`None` counts as +inf), compared stage
by stage. "No stage exits" reproduces the last stage's predictions, so a target <= 1 is
always met. Nothing depends on order or randomness: the same scores give the same
thresholds. The curve of GAP against frames over thresholds is the Pareto frontier of
all evaluated vectors (for each point, no other has lower cost and GAP at least as high).
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
from collections.abc import Sequence

import numpy as np

from schemas.features import MAX_FRAMES
from schemas.views import View
from trainer.metrics import average_precision

SCHEMA_VERSION = 1
CASCADE_FILE = "cascade.json"
CASCADE_FORMAT = "fewframes-cascade"
STAGES_DIR = "stages"

RULE_TOP1 = "top1"
RULE_AGREEMENT = "agreement"
RULE_GATE = "gate"
RULES = (RULE_TOP1, RULE_AGREEMENT, RULE_GATE)

COST_FRAMES = "frames"
COST_TIME = "time"
COSTS = (COST_FRAMES, COST_TIME)

DEFAULT_AGREEMENT_K = 5
GATE_SCORES = 5  # top scores a gate reads
GATE_ITERATIONS = 500
GATE_LEARNING_RATE = 0.5
GATE_L2 = 1e-3
DEFAULT_GRID = 16
# Every rule's exit score is a probability or a share, so >= 0: a threshold of 0 lets every
# video out, including one scored below every calibration video.
EXIT_ALWAYS = 0.0
MAX_EXHAUSTIVE = 4096
MAX_PASSES = 8

# The export metadata every stage must share: one class space and one set of features.
SHARED_IDENTITY_KEYS = ("kind", "features", "label_space", "num_classes", "num_entities", "vocabulary_sha256")


class CascadeError(ValueError):
    """A cascade that cannot work as asked (one line, for the command's usage error)."""


# ----- views -----------------------------------------------------------------------------------
def view_nests(inner: View, outer: View) -> bool:
    """Whether every frame `inner` keeps is kept by `outer`, for every video length."""
    if not (inner.is_deterministic and outer.is_deterministic):
        return False
    for n in range(1, MAX_FRAMES + 1):
        if not np.isin(inner.frame_indices(n), outer.frame_indices(n)).all():
            return False
    return True


def check_views_nest(views: Sequence[View]) -> None:
    """Refuse, in one line, a chain whose views do not nest coarse to fine."""
    if len(views) < 2:
        raise CascadeError(f"a cascade needs at least two stages, got {len(views)}")
    for i, view in enumerate(views):
        if not view.is_deterministic:
            raise CascadeError(
                f"stage {i} reads {view}, which is not deterministic; a cascade needs fixed views"
            )
    for i, (inner, outer) in enumerate(zip(views, views[1:], strict=False)):
        if not view_nests(inner, outer):
            raise CascadeError(
                f"views do not nest: stage {i} reads {inner}, which is not contained in stage {i + 1}'s "
                f"{outer} (every_n:a lies in every_n:b when b divides a; uniform:K in uniform:L when L is an "
                f"odd multiple of K; anything in all)"
            )


def check_same_space(metadatas: Sequence[dict]) -> None:
    """Refuse, in one line, stages that disagree on the class space or the features."""
    first = metadatas[0]
    for i, metadata in enumerate(metadatas[1:], start=1):
        for key in SHARED_IDENTITY_KEYS:
            if metadata.get(key) != first.get(key):
                raise CascadeError(
                    f"stage {i} has {key} {metadata.get(key)!r} but stage 0 has {first.get(key)!r}: "
                    f"the stages of a cascade share one class space and one set of features"
                )


def frames_paid(views: Sequence[View], num_frames: int) -> np.ndarray:
    """[S] the frames a video of `num_frames` frames has read when it exits after each stage:
    the size of the union of the views of stages 0..s (a frame counted once)."""
    seen = np.zeros(0, dtype=np.int32)
    paid = np.zeros(len(views), dtype=np.int64)
    for s, view in enumerate(views):
        seen = np.union1d(seen, view.frame_indices(int(num_frames)))
        paid[s] = seen.size
    return paid


def frames_matrix(views: Sequence[View], num_frames: Sequence[int]) -> np.ndarray:
    """[N, S] `frames_paid` of every video (computed once per distinct length)."""
    lengths = np.asarray(num_frames, dtype=np.int64)
    out = np.zeros((lengths.size, len(views)), dtype=np.int64)
    for n in np.unique(lengths):
        out[lengths == n] = frames_paid(views, int(n))
    return out


def time_matrix(seconds_per_video: Sequence[float], num_videos: int) -> np.ndarray:
    """[N, S] model seconds a video has cost when it exits after each stage."""
    cumulative = np.cumsum(np.asarray(seconds_per_video, dtype=np.float64))
    return np.broadcast_to(cumulative, (num_videos, cumulative.size)).copy()


# ----- exit rules -----------------------------------------------------------------------------
def gate_features(top_scores: np.ndarray, frames_read: np.ndarray) -> np.ndarray:
    """[N, GATE_SCORES + 1]: the top scores (zero-padded when k is smaller) and the share of
    MAX_FRAMES read."""
    top_scores = np.asarray(top_scores, dtype=np.float64)
    width = min(GATE_SCORES, top_scores.shape[1])
    features = np.zeros((top_scores.shape[0], GATE_SCORES + 1), dtype=np.float64)
    features[:, :width] = top_scores[:, :width]
    features[:, GATE_SCORES] = np.asarray(frames_read, dtype=np.float64) / MAX_FRAMES
    return features


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warnings for large |z|


@dataclasses.dataclass(frozen=True)
class Gate:
    """A logistic model on standardized `gate_features`: P(this stage's top-1 is a label)."""

    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray) -> Gate:
        """Full-batch gradient descent, `GATE_ITERATIONS` fixed steps from zero weights, L2
        `GATE_L2`: the same data give the same gate."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if x.shape[0] == 0:
            raise CascadeError("cannot fit an exit gate on no calibration videos")
        means = x.mean(axis=0)
        scales = x.std(axis=0)
        scales[scales == 0] = 1.0
        z = (x - means) / scales
        weights = np.zeros(x.shape[1])
        bias = 0.0
        for _ in range(GATE_ITERATIONS):
            error = _sigmoid(z @ weights + bias) - y
            weights -= GATE_LEARNING_RATE * (z.T @ error / len(y) + GATE_L2 * weights)
            bias -= GATE_LEARNING_RATE * float(error.mean())
        return cls(tuple(means.tolist()), tuple(scales.tolist()), tuple(weights.tolist()), float(bias))

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.means)) / np.asarray(self.scales)
        return _sigmoid(z @ np.asarray(self.weights) + self.bias)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {
            "features": f"top-{GATE_SCORES} scores, frames read / {MAX_FRAMES}"
        }

    @classmethod
    def from_dict(cls, data: dict) -> Gate:
        return cls(tuple(data["means"]), tuple(data["scales"]), tuple(data["weights"]), float(data["bias"]))


def agreement(classes: np.ndarray, previous: np.ndarray, k: int) -> np.ndarray:
    """[N] share of each video's top-k classes that are also in the previous stage's top-k."""
    classes = np.asarray(classes)[:, :k]
    previous = np.asarray(previous)[:, :k]
    width = min(k, classes.shape[1], previous.shape[1])
    if width == 0:
        return np.zeros(classes.shape[0])
    shared = (classes[:, :width, None] == previous[:, None, :width]).any(axis=2).sum(axis=1)
    return shared / width


@dataclasses.dataclass(frozen=True)
class ExitRule:
    """How a stage decides which videos stop: `name` in RULES and what it needs."""

    name: str
    agreement_k: int = DEFAULT_AGREEMENT_K
    gates: tuple[Gate, ...] = ()  # one per non-last stage, for RULE_GATE

    def __post_init__(self):
        if self.name not in RULES:
            raise CascadeError(f"unknown exit rule {self.name!r}; expected one of {', '.join(RULES)}")
        if self.agreement_k < 1:
            raise CascadeError(f"--agreement-k must be positive, got {self.agreement_k}")

    def scores(
        self,
        stage: int,
        classes: np.ndarray,
        top_scores: np.ndarray,
        frames_read: np.ndarray,
        previous_classes: np.ndarray | None = None,
    ) -> np.ndarray:
        """[N] exit scores of stage `stage`'s videos (higher: surer)."""
        if self.name == RULE_TOP1:
            return np.asarray(top_scores, dtype=np.float64)[:, 0]
        if self.name == RULE_AGREEMENT:
            if stage == 0 or previous_classes is None:
                return np.full(np.asarray(classes).shape[0], -np.inf)
            return agreement(classes, previous_classes, self.agreement_k)
        return self.gates[stage].predict(gate_features(top_scores, frames_read))

    def to_dict(self) -> dict:
        data = {"name": self.name}
        if self.name == RULE_AGREEMENT:
            data["agreement_k"] = self.agreement_k
        if self.name == RULE_GATE:
            data["gates"] = [gate.to_dict() for gate in self.gates]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ExitRule:
        return cls(
            data["name"],
            int(data.get("agreement_k", DEFAULT_AGREEMENT_K)),
            tuple(Gate.from_dict(g) for g in data.get("gates", ())),
        )


def fit_gates(stages: StageScores) -> tuple[Gate, ...]:
    """One gate per non-last stage, fitted on the calibration videos' scores."""
    return tuple(
        Gate.fit(gate_features(stages.scores[s], stages.frames[:, s]), stages.is_label[s][:, 0])
        for s in range(stages.num_stages - 1)
    )


def exit_scores(rule: ExitRule, stages: StageScores) -> list[np.ndarray]:
    """[S-1] arrays of [N] exit scores, one per non-last stage."""
    return [
        rule.scores(
            s, stages.classes[s], stages.scores[s], stages.frames[:, s], stages.classes[s - 1] if s else None
        )
        for s in range(stages.num_stages - 1)
    ]


def exit_stage(scores: Sequence[np.ndarray], thresholds: Sequence[float | None]) -> np.ndarray:
    """[N] the stage each video exits at: the first s whose score >= threshold s, else the last."""
    num_videos = len(scores[0]) if len(scores) else 0
    exits = np.full(num_videos, len(thresholds), dtype=np.int64)
    running = np.ones(num_videos, dtype=bool)
    for s, (score, threshold) in enumerate(zip(scores, thresholds, strict=True)):
        if threshold is None:
            continue
        leaving = running & (np.asarray(score) >= threshold)
        exits[leaving] = s
        running &= ~leaving
    return exits


# ----- calibration scores ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StageScores:
    """Every stage's top-k entries for the same N videos, aligned by video.

    `classes`, `scores`, `is_label`: [S, N, k]; `frames`: [N, S] frames paid when exiting
    after each stage (the union of views, `frames_matrix`); `num_positives`: the labels of
    all N videos (GAP's denominator, counting labels outside every top-k).
    """

    ids: tuple[str, ...]
    classes: np.ndarray
    scores: np.ndarray
    is_label: np.ndarray
    frames: np.ndarray
    num_frames: np.ndarray
    num_positives: int

    @property
    def num_stages(self) -> int:
        return self.classes.shape[0]

    @property
    def num_videos(self) -> int:
        return self.classes.shape[1]

    @classmethod
    def from_records(cls, views: Sequence[View], stage_records: Sequence[Sequence[dict]]) -> StageScores:
        """Per-stage video records (`VIDEO_SCHEMA`: id, labels, top_classes, top_scores,
        num_frames) -> the videos every stage scored, in id order (a video one stage
        dead-lettered has no cascade prediction to compare, so it is left out)."""
        by_stage = [{r["id"]: r for r in records} for records in stage_records]
        ids = sorted(set.intersection(*(set(d) for d in by_stage)))
        classes = np.array([[d[i]["top_classes"] for i in ids] for d in by_stage], dtype=np.int64)
        scores = np.array([[d[i]["top_scores"] for i in ids] for d in by_stage], dtype=np.float64)
        labels = [set(by_stage[-1][i]["labels"]) for i in ids]
        is_label = np.array(
            [[[c in labels[v] for c in row] for v, row in enumerate(stage)] for stage in classes], dtype=bool
        )
        k = max(len(by_stage[0][i]["top_classes"]) for i in ids) if ids else 0
        shape = (len(by_stage), len(ids), k)
        num_frames = np.array([by_stage[-1][i]["num_frames"] for i in ids], dtype=np.int64)
        return cls(
            ids=tuple(ids),
            classes=classes.reshape(shape),
            scores=scores.reshape(shape),
            is_label=is_label.reshape(shape),
            frames=frames_matrix(views, num_frames),
            num_frames=num_frames,
            num_positives=sum(len(x) for x in labels),
        )

    def gap(self, exits: np.ndarray) -> float:
        """GAP of the predictions each video has at the stage it exits at."""
        rows = np.arange(self.num_videos)
        return average_precision(
            self.scores[exits, rows].reshape(-1), self.is_label[exits, rows].reshape(-1), self.num_positives
        )

    def stage_gap(self, stage: int) -> float:
        return self.gap(np.full(self.num_videos, stage, dtype=np.int64))


# ----- threshold search --------------------------------------------------------------------------
def candidate_thresholds(scores: np.ndarray, grid: int = DEFAULT_GRID) -> list[float | None]:
    """`EXIT_ALWAYS`, the `grid` quantiles of a stage's exit scores (finite ones, "lower"
    method), deduplicated and ascending, then None (never exit). A stage none of whose
    scores is finite (agreement at the first stage) gets only None."""
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return [None]
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, grid), method="lower")
    return [float(q) for q in np.unique(np.append(quantiles, EXIT_ALWAYS))] + [None]


def _threshold_key(thresholds: Sequence[float | None]) -> tuple:
    return tuple(math.inf if t is None else t for t in thresholds)


@dataclasses.dataclass(frozen=True)
class CascadePoint:
    """One threshold vector's calibration result."""

    thresholds: tuple[float | None, ...]
    gap: float
    mean_cost: float
    mean_frames: float
    exits: tuple[int, ...]  # videos exiting at each stage

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"thresholds": list(self.thresholds), "exits": list(self.exits)}


@dataclasses.dataclass(frozen=True)
class SearchResult:
    best: CascadePoint
    target_gap: float
    last_gap: float
    method: str  # "exhaustive" or "coordinate"
    points: tuple[CascadePoint, ...]  # every vector evaluated, in evaluation order

    def frontier(self) -> list[CascadePoint]:
        """The GAP-vs-cost curve: points no other beats (lower cost, GAP at least as high),
        by ascending cost."""
        ordered = sorted(self.points, key=lambda p: (p.mean_cost, -p.gap, _threshold_key(p.thresholds)))
        curve, best_gap = [], -math.inf
        for point in ordered:
            if point.gap > best_gap:
                curve.append(point)
                best_gap = point.gap
        return curve


def evaluate_thresholds(
    stages: StageScores, scores: Sequence[np.ndarray], cost: np.ndarray, thresholds: Sequence[float | None]
) -> CascadePoint:
    exits = exit_stage(scores, thresholds)
    rows = np.arange(stages.num_videos)
    return CascadePoint(
        thresholds=tuple(thresholds),
        gap=stages.gap(exits),
        mean_cost=float(cost[rows, exits].mean()) if stages.num_videos else 0.0,
        mean_frames=float(stages.frames[rows, exits].mean()) if stages.num_videos else 0.0,
        exits=tuple(int(c) for c in np.bincount(exits, minlength=stages.num_stages)),
    )


def _better(a: CascadePoint, b: CascadePoint | None) -> bool:
    """Lower cost, then higher GAP, then smaller thresholds stage by stage."""
    if b is None:
        return True
    return (a.mean_cost, -a.gap, _threshold_key(a.thresholds)) < (
        b.mean_cost,
        -b.gap,
        _threshold_key(b.thresholds),
    )


def search_thresholds(
    stages: StageScores,
    scores: Sequence[np.ndarray],
    target: float,
    cost: np.ndarray | None = None,
    grid: int = DEFAULT_GRID,
    max_exhaustive: int = MAX_EXHAUSTIVE,
) -> SearchResult:
    """The thresholds of least mean cost with cascade GAP >= target x last stage's GAP (module
    docstring: the candidates, exhaustive or coordinate-wise, and the tie-breaks)."""
    if not 0 < target <= 1:
        raise CascadeError(f"--target must lie in (0, 1], got {target}")
    if stages.num_videos == 0:
        raise CascadeError("no calibration video was scored by every stage")
    cost = stages.frames.astype(np.float64) if cost is None else np.asarray(cost, dtype=np.float64)
    last_gap = stages.stage_gap(stages.num_stages - 1)
    goal = target * last_gap
    candidates = [candidate_thresholds(s, grid) for s in scores]
    seen: dict[tuple, CascadePoint] = {}

    def point(thresholds) -> CascadePoint:
        key = _threshold_key(thresholds)
        if key not in seen:
            seen[key] = evaluate_thresholds(stages, scores, cost, thresholds)
        return seen[key]

    def best_of(vectors) -> CascadePoint | None:
        best = None
        for vector in vectors:
            p = point(vector)
            if p.gap >= goal and _better(p, best):
                best = p
        return best

    if math.prod(len(c) for c in candidates) <= max_exhaustive:
        import itertools

        method = "exhaustive"
        best = best_of(itertools.product(*candidates))
    else:
        method = "coordinate"
        current = [None] * len(candidates)
        best = point(current)
        for _ in range(MAX_PASSES):
            changed = False
            for s, options in enumerate(candidates):
                vectors = [current[:s] + [t] + current[s + 1 :] for t in options]
                found = best_of(vectors)
                if found is not None and list(found.thresholds) != current:
                    current, best, changed = list(found.thresholds), found, True
            if not changed:
                break
    # "No stage exits" always meets a target <= 1, so `best` exists.
    return SearchResult(best, goal, last_gap, method, tuple(seen.values()))


# ----- the spec and cascade.json ---------------------------------------------------------------
def check_inside(path: str) -> str:
    """A stage path as cascade.json stores it: relative, inside the cascade dir, normalized."""
    normal = posixpath.normpath(path)
    if "://" in path or posixpath.isabs(path) or normal == ".." or normal.startswith("../") or "\\" in path:
        raise CascadeError(
            f"stage path {path!r} in {CASCADE_FILE} is not a relative path inside the cascade dir"
        )
    return normal


@dataclasses.dataclass(frozen=True)
class Stage:
    path: str  # relative to the cascade dir
    view: str  # the export's serving view
    model: dict  # the export's identity (plan.MODEL_IDENTITY_KEYS + its weights fingerprint)
    model_seconds_per_video: float | None = None  # measured once, for --cost time

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CascadeSpec:
    stages: tuple[Stage, ...]
    rule: ExitRule
    thresholds: tuple[float | None, ...]  # one per non-last stage; None: never exits there
    cost: str = COST_FRAMES
    target: float = 1.0
    top_k: int = 20
    calibration: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if len(self.thresholds) != len(self.stages) - 1:
            raise CascadeError(f"{len(self.stages)} stages need {len(self.stages) - 1} thresholds")
        if self.cost not in COSTS:
            raise CascadeError(f"unknown cost {self.cost!r}; expected one of {', '.join(COSTS)}")
        if self.rule.name == RULE_GATE and len(self.rule.gates) != len(self.stages) - 1:
            raise CascadeError(f"rule gate needs one gate per non-last stage, got {len(self.rule.gates)}")
        for stage in self.stages:
            check_inside(stage.path)
        check_views_nest([View.parse(stage.view) for stage in self.stages])

    @property
    def views(self) -> list[View]:
        return [View.parse(stage.view) for stage in self.stages]

    def to_dict(self) -> dict:
        return {
            "format": CASCADE_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "stages": [stage.to_dict() for stage in self.stages],
            "rule": self.rule.to_dict(),
            "thresholds": list(self.thresholds),
            "cost": self.cost,
            "target": self.target,
            "top_k": self.top_k,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, data: dict) -> CascadeSpec:
        if data.get("format") != CASCADE_FORMAT:
            raise CascadeError(f"{CASCADE_FILE} is not a fewframes cascade (format {data.get('format')!r})")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise CascadeError(
                f"{CASCADE_FILE} has schema version {data.get('schema_version')!r}; this fewframes reads "
                f"{SCHEMA_VERSION}"
            )
        try:
            return cls(
                stages=tuple(
                    Stage(
                        check_inside(s["path"]), s["view"], dict(s["model"]), s.get("model_seconds_per_video")
                    )
                    for s in data["stages"]
                ),
                rule=ExitRule.from_dict(data["rule"]),
                thresholds=tuple(None if t is None else float(t) for t in data["thresholds"]),
                cost=data.get("cost", COST_FRAMES),
                target=float(data.get("target", 1.0)),
                top_k=int(data.get("top_k", 20)),
                calibration=dict(data.get("calibration", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, CascadeError):
                raise
            raise CascadeError(f"{CASCADE_FILE} is malformed: {type(error).__name__}: {error}") from None


def is_cascade_dir(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(FileSystems.join(path.rstrip("/"), CASCADE_FILE))


def read_cascade(directory: str) -> CascadeSpec:
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(directory.rstrip("/"), CASCADE_FILE)
    try:
        with FileSystems.open(path) as stream:
            data = json.loads(stream.read())
    except (OSError, ValueError) as error:
        raise CascadeError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    return CascadeSpec.from_dict(data)


def write_cascade(directory: str, spec: CascadeSpec) -> str:
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(directory.rstrip("/"), CASCADE_FILE)
    with FileSystems.create(path, mime_type="application/json") as stream:
        stream.write(json.dumps(spec.to_dict(), indent=2, sort_keys=True).encode())
    return path


def stage_dir(directory: str, stage: Stage) -> str:
    """A stage's export directory inside the cascade dir (never outside it)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(directory.rstrip("/"), *check_inside(stage.path).split("/"))
