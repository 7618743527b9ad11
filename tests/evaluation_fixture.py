"""Evaluation output directories made from random predictions, and report-page readers.

`write_evaluation_dir` writes what `fewframes evaluate` writes (metrics.json,
per_class.csv, videos.parquet) through `pipelines.scoring.outputs`, from predictions
scored by `trainer.metrics.score_videos`, so the report and compare tests need no model;
`scored_records` makes the per-video records a job emits, the same way.
Videos (ids, labels, lengths) come from `videos_seed`, predictions from `seed`: two
runs with the same `videos_seed` scored the same videos.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import struct
import zlib

import numpy as np

from pipelines.scoring import outputs as out
from trainer.metrics import MetricsAccumulator, score_videos

VERTICALS = ("Arts & Entertainment", "Games", "Autos & Vehicles", "Sports", "Food & Drink")


def scored_records(predictions, labels, top_k: int) -> list[dict]:
    """The per-video records an evaluation job emits (ids v0, v1, ..., video i 10 + i frames long),
    from `predictions` scored against `labels` by `trainer.metrics.score_videos`."""
    scored = score_videos(predictions, labels, top_k)
    return [
        {
            "id": f"v{i}",
            "labels": [int(x) for x in scored.labels()[i]],
            "top_classes": scored.classes[i].tolist(),
            "top_scores": scored.scores[i].tolist(),
            "perr": float(scored.perr[i]),
            "num_frames": 10 + i,
            "frames_read": 2,
            "model_seconds": 0.5,
        }
        for i in range(len(predictions))
    ]


def write_evaluation_dir(
    directory: str,
    *,
    videos: int = 300,
    classes: int = 30,
    videos_seed: int = 0,
    seed: int = 1,
    signal: float = 0.5,
    top_k: int = 20,
    role: str = "student",
    preset: str = "small",
    view: str = "every_n:10",
    every: int = 10,
    ms_per_frame: float = 0.02,
    label_space: str = "entities",
    names=None,
    verticals=None,
    shuffle_rows: bool = False,
    keep=None,
    segments: dict | None = None,
) -> dict:
    """Write an evaluation output to `directory` (local or gs://); returns its metrics.json.

    `signal` is added to the scores of a video's labels (higher: better metrics); `every`
    is the frame stride the model reads; `keep` (a boolean mask or index array over the
    videos) drops videos; `shuffle_rows` writes videos.parquet rows in random order.
    """
    video_rng = np.random.default_rng(videos_seed)
    labels = [
        np.sort(video_rng.choice(classes, size=video_rng.integers(0, 4), replace=False)).astype(np.int32)
        for _ in range(videos)
    ]
    num_frames = video_rng.integers(30, 301, size=videos)
    ids = np.array([f"vid{i:05d}" for i in range(videos)])
    rng = np.random.default_rng(seed)
    predictions = rng.random((videos, classes), dtype=np.float32) * 0.7
    for row, video_labels in enumerate(labels):
        predictions[row, video_labels] += signal * rng.random(len(video_labels), dtype=np.float32)
    predictions = np.clip(predictions, 0, 1)
    order = np.arange(videos)
    if keep is not None:
        order = order[np.asarray(keep)]
    if shuffle_rows:
        order = rng.permutation(order)
    labels = [labels[i] for i in order]
    predictions, num_frames, ids = predictions[order], num_frames[order], ids[order]

    scored = score_videos(predictions, labels, top_k)
    frames_read = -(-num_frames // every)
    seconds = frames_read * ms_per_frame / 1000
    records = [
        {
            "id": str(ids[i]),
            "labels": labels[i].tolist(),
            "top_classes": scored.classes[i].tolist(),
            "top_scores": scored.scores[i].tolist(),
            "perr": float(scored.perr[i]),
            "num_frames": int(num_frames[i]),
            "frames_read": int(frames_read[i]),
            "model_seconds": float(seconds[i]),
        }
        for i in range(len(order))
    ]
    out.write_videos(directory, out.videos_table(records))

    acc = MetricsAccumulator(classes, top_k).add_scored(scored, ids.tolist())
    names = list(names) if names is not None else [f"class {c}" for c in range(classes)]
    verticals = (
        list(verticals) if verticals is not None else [VERTICALS[c % len(VERTICALS)] for c in range(classes)]
    )
    out.write_per_class(
        directory,
        [
            {**row, "name": names[row["class"]], "vertical": verticals[row["class"]]}
            for row in acc.per_class()
        ],
    )
    metrics = acc.result()
    metrics["map"] = metrics["map_nonempty_classes"]
    n = len(order)
    metrics.update(
        {
            "num_failed": 0,
            "num_records": n,
            "frames": {
                "mean_num_frames": float(num_frames.sum() / n),
                "mean_frames_read": float(frames_read.sum() / n),
                "fraction_read": float(frames_read.sum() / num_frames.sum()),
            },
            "timing": {
                "model_seconds_per_video": float(seconds.sum() / n),
                "model_seconds": float(seconds.sum()),
                "wall_seconds": 12.5,
            },
            "model": {
                "path": f"/jobs/{role}/export",
                "role": role,
                "preset": preset,
                "view": view,
                "serving_view": view,
                "features": ["rgb", "audio"],
                "label_space": label_space,
                "num_classes": classes,
                "kind": "frame",
                "top_k": top_k,
            },
            "input": {"patterns": ["/data/validate*.tfrecord"], "source": "raw", "kind": "frame", "files": 2},
        }
    )
    if segments is not None:
        metrics["segments"] = segments
    out.write_metrics(directory, metrics)
    return metrics


# ----- reading a report back -----------------------------------------------------------------------
class PageParser(html.parser.HTMLParser):
    """Every start tag's (name, attributes) of a page, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse_tags(page: str) -> list[tuple[str, dict]]:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser.tags


def inline_images(page: str) -> list[bytes]:
    """The bytes of every <img>; fails on one that is not an inline PNG."""
    images = []
    for tag, attrs in parse_tags(page):
        if tag == "img":
            src = attrs.get("src", "")
            prefix = "data:image/png;base64,"
            assert src.startswith(prefix), src[:80]
            images.append(base64.b64decode(src[len(prefix) :], validate=True))
    return images


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG that decodes in full (PIL when installed, else zlib)."""
    try:
        from PIL import Image
    except ImportError:
        return png_size_zlib(data)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated or corrupt image raises
        return image.size


def png_size_zlib(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, size = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    assert size is not None and idat
    zlib.decompress(idat)
    return size


def data_values(page: str) -> list[dict]:
    """Attributes of every element that carries `data-metric`, values parsed from JSON."""
    found = []
    for _, attrs in parse_tags(page):
        if "data-metric" in attrs:
            entry = dict(attrs)
            for key in ("data-value", "data-ci-low", "data-ci-high"):
                if key in entry:
                    entry[key] = json.loads(entry[key])
            found.append(entry)
    return found
