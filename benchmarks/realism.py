"""How much frame-level shards look like real video over time, side by side.

    .venv/bin/python benchmarks/realism.py SHARDS... [--generate MODEL:VIDEOS ...]
    .venv/bin/python benchmarks/realism.py ../shared/data/yt8m-v2-frame-sample/*.tfrecord \\
        --generate shots:40 --generate iid:40

The shards (files, globs or directories) of each directory make one column, named by
the directory; `--generate MODEL:VIDEOS` adds a column of
`pipelines.synth` videos (seed 0, 100 classes, 30:300 frames) of that frame model,
made in memory. For rgb and audio it prints `pipelines.synthetic.realism.realism_statistics`:
the mean over videos of the cosine between frame t and t + lag (l2-normalised frames,
the video's mean removed) at lags 1, 2, 5, 10, 20, and the within / between video
spread, with the real sample's 143-video figures (../shared/data/README.md) beside.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pipelines import synth  # noqa: E402
from pipelines.synthetic import realism  # noqa: E402
from schemas import features as F  # noqa: E402

# ../shared/data/README.md: 143 real videos of the frame sample's source.
REAL_143 = {
    F.RGB: {"lags": {1: 0.47, 2: 0.35, 5: 0.19, 10: 0.11, 20: 0.04}, "within": 0.751, "between": 0.232},
    F.AUDIO: {"lags": {1: 0.25, 2: 0.20, 5: 0.13, 10: 0.08, 20: 0.03}, "within": 0.630, "between": 0.352},
}
for _values in REAL_143.values():
    _values["spread_ratio"] = _values["within"] / _values["between"]


def generated_frames(frame_model: str, videos: int, seed: int = 0):
    config = synth.SynthConfig(videos=videos, seed=seed, frame_model=frame_model)
    synthesizer = synth.VideoSynthesizer(config)
    for index in range(videos):
        video = synthesizer.video(index)
        yield {F.RGB: video.rgb, F.AUDIO: video.audio}


def table(columns: dict[str, dict]) -> str:
    names = ["real (143, README)", *columns]
    stats = [REAL_143, *columns.values()]
    width = max(18, *(len(name) for name in names))
    lines = []
    for feature in F.FRAME_FEATURES:
        lines.append(f"{feature:<16}" + "".join(f"{name:>{width + 2}}" for name in names))
        rows = [(f"lag {lag} cosine", lambda s, lag=lag: s["lags"][lag]) for lag in realism.LAGS]
        rows += [
            ("within spread", lambda s: s["within"]),
            ("between spread", lambda s: s["between"]),
            ("within/between", lambda s: s["spread_ratio"]),
        ]
        for label, value in rows:
            lines.append(f"{label:<16}" + "".join(f"{value(s[feature]):>{width + 2}.3f}" for s in stats))
        videos = "".join(f"{s[feature].get('videos', 143):>{width + 2}}" for s in stats)
        lines.append(f"{'videos':<16}" + videos)
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shards", nargs="*", help="frame-level shard files, globs or directories")
    parser.add_argument(
        "--generate",
        action="append",
        default=[],
        metavar="MODEL:VIDEOS",
        help=f"a column of generated videos; MODEL is one of {', '.join(synth.FRAME_MODELS)}",
    )
    args = parser.parse_args(argv)
    by_directory: dict[str, list[str]] = {}
    for pattern in args.shards:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*.tfrecord")
        paths = sorted(glob.glob(pattern))
        if not paths:
            parser.error(f"no shards match {pattern}")
        for path in paths:
            by_directory.setdefault(os.path.dirname(path) or ".", []).append(path)
    columns = {}
    for directory, paths in by_directory.items():
        columns[directory] = realism.realism_statistics(realism.read_frames(sorted(set(paths))))
    for spec in args.generate:
        model, _, videos = spec.partition(":")
        if model not in synth.FRAME_MODELS or not videos.isdigit() or int(videos) < 1:
            models = ", ".join(synth.FRAME_MODELS)
            parser.error(f"--generate expects MODEL:VIDEOS, MODEL in {models}: {spec!r}")
        frames = generated_frames(model, int(videos))
        columns[f"synth {model} ({videos})"] = realism.realism_statistics(frames)
    if not columns:
        parser.error("give shards or --generate")
    print(table(columns))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
