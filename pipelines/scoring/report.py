"""Self-contained HTML reports: one evaluation run, and a comparison of runs.

`write_evaluation_report(output_dir)` reads an evaluation output directory
(`pipelines.scoring.outputs`) and writes `report.html` beside its files: headline
metrics with their conventions, the model's and input's identity, the precision-recall
curve of the pooled top-k entries (GAP's ranking), AP by vertical, AP against
positives, and the worst and best classes. `write_comparison_report(output_dir,
comparison)` does the same for `fewframes compare` (`pipelines.compare`): the table of
runs with bootstrap intervals and the metric-vs-frames-read and time-vs-frames-read
plots.

A report is one file viewable offline: plots are PNGs drawn with Matplotlib's Agg
canvas (no pyplot, no global backend switch) and inlined as `data:image/png;base64`,
the style sheet is inline, there is no script, and a Content-Security-Policy forbids
loading anything else. Every string that comes from data (class names and verticals
from a CSV, paths, labels) is HTML-escaped, and drawn in a plot as plain text (never as
mathtext). Headline numbers carry their exact value
in `data-value` (JSON), so tests and scripts can read them back from the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipelines.scoring import outputs as out

COMPARISON_REPORT_FILE = out.REPORT_FILE
CLASSES_SHOWN = 10  # worst and best classes, each
MIN_POSITIVES = 5  # a class's AP over fewer positive videos is too noisy to rank
CURVE_POINTS = 1500  # the precision-recall curve is downsampled to about this many points
SCORE_MARKS = (0.9, 0.5, 0.1)  # score thresholds marked on the precision-recall curve
MAX_BARS = 60  # AP-by-vertical bars (YouTube-8M has 25 verticals)

# No script, nothing fetched: the page cannot load anything but its own inline images.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

METRIC_NAMES = {
    "gap": "GAP",
    "map_nonempty_classes": "mAP (classes with positives)",
    "map_all_classes": "mAP (all classes)",
    "hit_at_1": "Hit@1",
    "perr": "PERR",
}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.subtitle { color: #666; margin-top: 0; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f5f5f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.note { color: #666; font-size: 0.85rem; }
td.path { word-break: break-all; min-width: 12rem; }
span.ci { display: block; color: #666; font-size: 0.8rem; }
td.sig { font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.grid > div { flex: 1 1 420px; }
img { max-width: 100%; height: auto; }
p.caption { color: #555; font-size: 0.88rem; max-width: 70ch; }
code { background: #f5f5f7; padding: 0 0.2rem; border-radius: 3px; }
.wide { overflow-x: auto; }
"""


# ----- HTML and PNG helpers ----------------------------------------------------------------------
def escape(value) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape("n/a" if value is None else str(value), quote=True)


def png_data_uri(figure: Figure, dpi: int = 100) -> str:
    """A Matplotlib figure as a `data:image/png;base64,...` URI (no Software/date metadata)."""
    buffer = io.BytesIO()
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(figure: Figure, alt: str) -> str:
    return f'<img src="{png_data_uri(figure)}" alt="{escape(alt)}">'


def _figure(width: float = 6.4, height: float = 4.2):
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="subtitle">{escape(subtitle)}</p>',
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] = ()) -> str:
    """`rows` hold ready HTML cells (`<td>...</td>`); headers are escaped here."""
    numeric = list(numeric) + [False] * (len(headers) - len(numeric))
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if n else f"<th>{escape(h)}</th>"
        for h, n in zip(headers, numeric, strict=True)
    )
    body = "\n".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f'<div class="wide"><table>\n<tr>{head}</tr>\n{body}\n</table></div>'


def _text_cell(value) -> str:
    return f"<td>{escape(value)}</td>"


def _value_cell(key: str | None, value, text: str, attrs: dict | None = None, css: str = "num") -> str:
    """A numeric cell whose exact value is `data-value` (JSON) and text is `text`."""
    extra = {"data-metric": key, "data-value": json.dumps(value)} if key is not None else {}
    extra.update(attrs or {})
    if key is not None and "data-run" not in extra:
        extra["id"] = "metric-" + key
    attributes = "".join(f' {name}="{escape(v)}"' for name, v in extra.items())
    return f'<td class="{css}"{attributes}>{escape(text)}</td>'


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ms(seconds) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.3f} ms"


def _lookup(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _joined(value, separator: str = ", ") -> str | None:
    if isinstance(value, list | tuple):
        return separator.join(str(v) for v in value)
    return value


def downsample_indices(length: int, points: int = CURVE_POINTS) -> np.ndarray:
    """About `points` indices into a curve of `length`: dense at the start (log-spaced,
    where a precision curve moves most) and even over the rest; first and last kept."""
    if length <= points:
        return np.arange(length)
    log_spaced = np.geomspace(1, length, points // 2).astype(np.int64) - 1
    even = np.linspace(0, length - 1, points - points // 2).astype(np.int64)
    return np.unique(np.concatenate([log_spaced, even, [0, length - 1]]))


# ----- one evaluation run ---------------------------------------------------------------------------
def write_evaluation_report(output_dir: str) -> str:
    """Write `report.html` into an evaluation output directory; returns its path."""
    output_dir = output_dir.rstrip("/")
    metrics = out.read_metrics(output_dir)
    per_class = out.read_per_class(output_dir)
    videos = out.read_videos(output_dir)
    page = render_evaluation_report(metrics, per_class, videos, output_dir)
    path = out.join(output_dir, out.REPORT_FILE)
    out.write_bytes(path, page.encode("utf-8"), "text/html")
    return path


def render_evaluation_report(metrics: dict, per_class: list[dict], videos, source: str = "") -> str:
    """The report's HTML from `metrics.json`, `per_class.csv` rows and the videos table."""
    model = metrics.get("model") or {}
    num_classes = int(model.get("num_classes") or len(per_class))
    top_k = int(metrics.get("top_k") or 20)
    title = "Evaluation: " + " ".join(
        str(v)
        for v in (model.get("role"), model.get("preset"), model.get("serving_view") or model.get("view"))
        if v
    )
    sections = [
        _headline_section(metrics, per_class),
        _identity_section(metrics),
        _precision_recall_section(videos, num_classes, top_k, metrics),
        _vertical_section(per_class),
        _classes_section(per_class),
    ]
    return _page(title.strip() if title != "Evaluation: " else "Evaluation", source, sections)


_HEADLINE = (
    # (key in metrics.json, label, formatter, note)
    ("gap", "GAP", _fmt, "global average precision of the pooled top-{k} entries of every video"),
    (
        "map_nonempty_classes",
        "mAP (classes with positives)",
        _fmt,
        "mean AP over the {nonempty} classes with at least one positive video; the headline "
        "'map' of metrics.json",
    ),
    (
        "map_all_classes",
        "mAP (all classes)",
        _fmt,
        "mean AP over all {classes} classes, a class without positives counting 0 (the starter's 'map')",
    ),
    ("hit_at_1", "Hit@1", _fmt, "fraction of videos whose top class is one of their labels"),
    ("perr", "PERR", _fmt, "precision at each video's own number of labels, averaged over videos"),
    ("segments.map_at_k", "Segment mAP@K", _fmt, "over rated 2019 segments"),
    ("num_videos", "Videos scored", _fmt, ""),
    ("num_failed", "Failed records", _fmt, "dead letters (failed-*.jsonl)"),
    ("num_records", "Records read", _fmt, ""),
    ("num_positives", "Positive labels", _fmt, "the GAP denominator"),
    ("top_k", "Top k", _fmt, "entries kept per video"),
    (
        "frames.fraction_read",
        "Frames read (fraction)",
        _percent,
        "frames the model read / frames in the videos",
    ),
    ("frames.mean_frames_read", "Frames read per video", lambda v: _fmt(v, 1), ""),
    ("frames.mean_num_frames", "Frames per video", lambda v: _fmt(v, 1), ""),
    ("timing.model_seconds_per_video", "Model time per video", _ms, "inference only, batched"),
    (
        "timing.wall_seconds",
        "Wall time",
        lambda v: _fmt(v, 1) + " s" if v is not None else "n/a",
        "whole job",
    ),
)


def _headline_section(metrics: dict, per_class: list[dict]) -> str:
    nonempty = sum(1 for row in per_class if row["positives"] > 0)
    context = {"k": metrics.get("top_k"), "nonempty": nonempty, "classes": len(per_class)}
    rows = []
    for key, label, formatter, note in _HEADLINE:
        value = _lookup(metrics, key)
        if value is None and key.startswith(("segments.", "timing.wall")):
            continue
        if key == "segments.map_at_k":
            label = f"Segment mAP@{_lookup(metrics, 'segments.k')}"
            pairs = _lookup(metrics, "segments.num_rated_pairs")
            note = f"over {pairs:,} rated (segment, class) pairs" if isinstance(pairs, int) else note
        rows.append(
            [
                _text_cell(label),
                _value_cell(key, value, formatter(value)),
                f'<td class="note">{escape(note.format(**context))}</td>',
            ]
        )
    return "<h2>Headline metrics</h2>\n" + _table(["Metric", "Value", "Convention"], rows, [False, True])


def _identity_section(metrics: dict) -> str:
    model = metrics.get("model") or {}
    source = metrics.get("input") or {}
    model_rows = [
        ("Role", model.get("role")),
        ("Preset", model.get("preset")),
        ("View", model.get("serving_view") or model.get("view")),
        ("Features", _joined(model.get("features"), "+")),
        ("Kind", model.get("kind")),
        ("Label space", model.get("label_space")),
        ("Classes", model.get("num_classes")),
        ("Export", model.get("path")),
    ]
    input_rows = [
        ("Source", source.get("source")),
        ("Kind", source.get("kind")),
        ("Patterns", _joined(source.get("patterns"))),
        ("Files", source.get("files")),
    ]
    model_table = _table(["Model", ""], [[_text_cell(k), _text_cell(v)] for k, v in model_rows])
    input_table = _table(
        ["Input", ""], [[_text_cell(k), _text_cell(v)] for k, v in input_rows if v is not None]
    )
    return (
        f'<h2>Model and input</h2>\n<div class="grid"><div>{model_table}</div><div>{input_table}</div></div>'
    )


def _precision_recall_section(videos, num_classes: int, top_k: int, metrics: dict) -> str:
    heading = f"<h2>Precision and recall of the pooled top-{top_k}</h2>"
    if videos.num_rows == 0:
        return heading + "<p>No videos were scored.</p>"
    curve = out.accumulator_from_table(videos, num_classes, top_k).pooled_precision_recall()
    if curve.precision.size == 0:
        return heading + "<p>No entries to rank.</p>"
    keep = downsample_indices(curve.precision.size)
    figure, axes = _figure()
    axes.plot(curve.recall[keep], curve.precision[keep], color="#1f77b4", linewidth=1.6)
    # Non-increasing scores: the last entry with score >= t ends the list cut at t.
    descending = curve.score.astype(np.float64)
    marked: list[tuple[float, float]] = []
    for threshold in SCORE_MARKS:
        cut = int(np.searchsorted(-descending, -threshold, side="right")) - 1
        if not 0 <= cut < descending.size:
            continue
        point = (float(curve.recall[cut]), float(curve.precision[cut]))
        if any(abs(point[0] - x) + abs(point[1] - y) < 0.04 for x, y in marked):
            continue  # a lower threshold cutting (almost) where a higher one did
        marked.append(point)
        axes.plot(*point, "o", color="#d62728", markersize=5)
        axes.annotate(
            f"score ≥ {threshold:g}", point, textcoords="offset points", xytext=(6, -12), fontsize=8
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall (of all positive labels)")
    axes.set_ylabel("precision")
    axes.grid(alpha=0.3)
    gap = metrics.get("gap")
    axes.set_title(
        f"pooled top-{top_k} of {videos.num_rows:,} videos" + (f", GAP {gap:.4f}" if gap is not None else "")
    )
    caption = (
        f"Every video's {top_k} highest-scored classes, pooled and ranked by score (GAP's ranking). "
        "Recall is relative to all positive labels, so it stops short of 1 when labels fall outside "
        f"a video's top {top_k}; the area under the curve is the GAP. Red dots mark score thresholds."
    )
    return f'{heading}\n{_image(figure, "precision-recall curve")}\n<p class="caption">{escape(caption)}</p>'


def vertical_summary(per_class: list[dict]) -> list[dict]:
    """Mean AP of the classes with positives, per vertical (best first)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in per_class:
        if row["positives"] > 0:
            groups[row.get("vertical") or ""].append(row)
    summary = [
        {
            "vertical": vertical,
            "classes": len(rows),
            "positives": sum(r["positives"] for r in rows),
            "mean_ap": math.fsum(r["ap"] for r in rows) / len(rows),
        }
        for vertical, rows in groups.items()
    ]
    return sorted(summary, key=lambda s: (-s["mean_ap"], s["vertical"]))


def _vertical_section(per_class: list[dict]) -> str:
    heading = "<h2>AP by vertical</h2>"
    summary = vertical_summary(per_class)
    if not summary:
        return heading + "<p>No class has a positive video.</p>"
    if all(s["vertical"] == "" for s in summary):
        return heading + (
            "<p>per_class.csv names no verticals (evaluate with <code>--vocabulary</code> to group "
            "classes by vertical).</p>"
        )
    shown = summary[:MAX_BARS]
    figure, axes = _figure(6.4, max(2.4, 0.28 * len(shown) + 1.0))
    names = [s["vertical"] or "(none)" for s in shown][::-1]
    axes.barh(range(len(shown)), [s["mean_ap"] for s in shown][::-1], color="#4c72b0")
    # Verticals are data: drawn as typed, never parsed as mathtext (`$...$`).
    axes.set_yticks(range(len(shown)), names, fontsize=8, parse_math=False)
    axes.set_xlim(0, min(1.0, max(0.05, 1.15 * max(s["mean_ap"] for s in shown))))
    axes.set_xlabel("mean AP of the vertical's classes with positives")
    axes.grid(axis="x", alpha=0.3)
    note = f" (the {MAX_BARS} best of {len(summary)})" if len(summary) > MAX_BARS else ""
    rows = [
        [
            _text_cell(s["vertical"] or "(none)"),
            _value_cell(None, None, _fmt(s["classes"])),
            _value_cell(None, None, _fmt(s["positives"])),
            _value_cell(None, None, _fmt(s["mean_ap"])),
        ]
        for s in summary
    ]
    table = _table(["Vertical", "Classes", "Positives", "Mean AP"], rows, [False, True, True, True])
    return (
        f'{heading}\n<p class="caption">Mean AP over each vertical\'s classes that have at least one '
        f"positive video{escape(note)}.</p>\n"
        f'<div class="grid"><div>{_image(figure, "AP by vertical")}</div><div>{table}</div></div>'
    )


def ranked_classes(per_class: list[dict], min_positives: int = MIN_POSITIVES, count: int = CLASSES_SHOWN):
    """(worst, best, threshold): classes with >= threshold positives, lowest and highest AP.

    The threshold is `min_positives`, lowered to 1 when no class reaches it.
    """
    threshold = min_positives
    eligible = [r for r in per_class if r["positives"] >= threshold]
    if not eligible:
        threshold = 1
        eligible = [r for r in per_class if r["positives"] >= 1]
    ordered = sorted(eligible, key=lambda r: (r["ap"], -r["positives"], r["class"]))
    best = sorted(eligible, key=lambda r: (-r["ap"], -r["positives"], r["class"]))
    return ordered[:count], best[:count], threshold


def _classes_section(per_class: list[dict]) -> str:
    heading = "<h2>Classes</h2>"
    worst, best, threshold = ranked_classes(per_class)
    if not worst:
        return heading + "<p>No class has a positive video.</p>"
    with_positives = [r for r in per_class if r["positives"] > 0]
    figure, axes = _figure(6.4, 3.8)
    axes.scatter(
        [r["positives"] for r in with_positives],
        [r["ap"] for r in with_positives],
        s=8 if len(with_positives) > 300 else 20,
        alpha=0.5 if len(with_positives) > 300 else 0.8,
        color="#4c72b0",
        linewidths=0,
    )
    positives = [r["positives"] for r in with_positives]
    if max(positives) >= 20 * min(positives):
        axes.set_xscale("log")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("positive videos of the class")
    axes.set_ylabel("AP")
    axes.set_title(f"AP of the {len(with_positives):,} classes with positives")
    axes.grid(alpha=0.3)

    def table(rows):
        cells = [
            [
                _value_cell(None, None, str(r["class"])),
                _text_cell(r.get("name")),
                _text_cell(r.get("vertical") or ""),
                _value_cell(None, None, _fmt(r["ap"])),
                _value_cell(None, None, _fmt(r["positives"])),
            ]
            for r in rows
        ]
        return _table(
            ["Class", "Name", "Vertical", "AP", "Positives"], cells, [True, False, False, True, True]
        )

    caption = (
        f"Among the classes with at least {threshold} positive video{'s' if threshold != 1 else ''} "
        f"({sum(1 for r in per_class if r['positives'] >= threshold):,} classes)."
    )
    return (
        f"{heading}\n{_image(figure, 'AP against positives')}\n"
        f'<p class="caption">{escape(caption)}</p>\n'
        f'<div class="grid"><div><h3>Worst {len(worst)}</h3>{table(worst)}</div>'
        f"<div><h3>Best {len(best)}</h3>{table(best)}</div></div>"
    )


# ----- a comparison of runs ---------------------------------------------------------------------------
def write_comparison_report(output_dir: str, comparison: dict) -> str:
    """Write `report.html` for a `fewframes compare` result (`comparison.json`); returns its path."""
    page = render_comparison_report(comparison)
    path = out.join(output_dir.rstrip("/"), COMPARISON_REPORT_FILE)
    out.write_bytes(path, page.encode("utf-8"), "text/html")
    return path


def render_comparison_report(comparison: dict) -> str:
    runs = comparison["runs"]
    boot = comparison["bootstrap"]
    level = f"{100 * boot['confidence']:g}%"
    reference = comparison["reference"]
    subtitle = (
        f"{len(runs)} runs on the same {comparison['num_videos']:,} videos; {level} percentile intervals "
        f"from {boot['resamples']:,} paired bootstrap resamples of the videos (seed {boot['seed']})"
    )
    sections = [
        _runs_section(runs),
        _comparison_metrics_section(comparison, level),
        _difference_section(comparison, level, reference),
        _comparison_plots(comparison, level),
        _comparison_notes(comparison),
    ]
    return _page("Comparison", subtitle, sections)


def _runs_section(runs: list[dict]) -> str:
    rows = [
        [
            _text_cell(r["label"]),
            _text_cell(r.get("role")),
            _text_cell(r.get("preset")),
            _text_cell(r.get("view")),
            _text_cell(_joined(r.get("features"), "+")),
            _value_cell(
                "mean_frames_read", r["mean_frames_read"], _fmt(r["mean_frames_read"], 1), {"data-run": i}
            ),
            _value_cell("fraction_read", r["fraction_read"], _percent(r["fraction_read"]), {"data-run": i}),
            _value_cell(
                "model_seconds_per_video",
                r["model_seconds_per_video"],
                _ms(r["model_seconds_per_video"]),
                {"data-run": i},
            ),
            f'<td class="path">{escape(r.get("path"))}</td>',
        ]
        for i, r in enumerate(runs)
    ]
    headers = [
        "Run",
        "Role",
        "Preset",
        "View",
        "Features",
        "Frames read",
        "Fraction read",
        "Model time / video",
        "Evaluation",
    ]
    return "<h2>Runs</h2>\n" + _table(headers, rows, [False] * 5 + [True] * 3)


def _ci_cell(metric: str, run: int, value, low, high, css: str = "num") -> str:
    attrs = {"data-run": run, "data-ci-low": json.dumps(low), "data-ci-high": json.dumps(high)}
    cell = _value_cell(metric, value, _fmt(value), attrs, css)
    return cell.replace("</td>", f' <span class="ci">[{escape(_fmt(low))}, {escape(_fmt(high))}]</span></td>')


def _comparison_metrics_section(comparison: dict, level: str) -> str:
    metrics = comparison["metrics"]
    rows = [
        [_text_cell(r["label"])]
        + [_ci_cell(m, i, r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"]) for m in metrics]
        for i, r in enumerate(comparison["runs"])
    ]
    headers = ["Run"] + [METRIC_NAMES.get(m, m) for m in metrics]
    return (
        '<h2>Metrics</h2>\n<p class="caption">Point estimate on all compared videos, and the '
        f"{escape(level)} bootstrap interval in brackets.</p>\n"
        + _table(headers, rows, [False] + [True] * len(metrics))
    )


def _difference_section(comparison: dict, level: str, reference: str) -> str:
    metrics = comparison["metrics"]
    rows = []
    for i, r in enumerate(comparison["runs"][1:], start=1):
        cells = [_text_cell(r["label"])]
        for m in metrics:
            low, high = r[f"{m}_diff_ci_low"], r[f"{m}_diff_ci_high"]
            significant = low is not None and high is not None and (low > 0 or high < 0)
            cells.append(
                _ci_cell(f"{m}_diff", i, r[f"{m}_diff"], low, high, "num sig" if significant else "num")
            )
        rows.append(cells)
    headers = ["Run"] + [f"Δ {METRIC_NAMES.get(m, m)}" for m in metrics]
    caption = (
        f"Each run minus the reference ({reference}), the same resampled videos for both: a paired "
        f"bootstrap. Bold: the {level} interval excludes 0."
    )
    return (
        f'<h2>Difference from {escape(reference)}</h2>\n<p class="caption">{escape(caption)}</p>\n'
        + _table(headers, rows, [False] + [True] * len(metrics))
    )


def _frames_axis(axes, runs: list[dict]) -> np.ndarray:
    """Frames read per video as the x axis (log when it spans a decade or so); runs that
    read (about) the same number of frames are spread apart a little so their error bars
    do not hide each other (e.g. several seeds of one student)."""
    x = np.array([r["mean_frames_read"] for r in runs], dtype=np.float64)
    positive = x[x > 0]
    log = bool(positive.size) and positive.max() / positive.min() >= 8
    if log:
        axes.set_xscale("log")
    axes.set_xlabel("frames read per video (mean)")
    axes.grid(alpha=0.3)
    axes.grid(alpha=0.1, which="minor")
    span = float(x.max() - x.min()) or max(float(x.max()), 1.0)
    dodged = x.copy()
    groups: dict[int, list[int]] = defaultdict(list)
    for i, value in enumerate(x):
        key = round(math.log(value) / 0.02) if log and value > 0 else round(value / (0.02 * span))
        groups[key].append(i)
    for members in groups.values():
        for position, i in enumerate(members):
            shift = 0.03 * (position - (len(members) - 1) / 2)
            dodged[i] = x[i] * math.exp(shift) if log and x[i] > 0 else x[i] + shift * span
    return dodged


def _annotate(axes, runs: list[dict], x, y) -> None:
    for r, xi, yi in zip(runs, x, y, strict=True):
        axes.annotate(
            str(r["label"]), (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8, parse_math=False
        )


def _metric_plot(comparison: dict, metric: str, level: str) -> str:
    runs = comparison["runs"]
    figure, axes = _figure(6.0, 4.0)
    x = _frames_axis(axes, runs)
    y = np.array([r[metric] for r in runs], dtype=np.float64)
    low = np.array([r[f"{metric}_ci_low"] for r in runs], dtype=np.float64)
    high = np.array([r[f"{metric}_ci_high"] for r in runs], dtype=np.float64)
    for i, r in enumerate(runs):
        axes.errorbar(
            x[i],
            y[i],
            yerr=[[max(y[i] - low[i], 0.0)], [max(high[i] - y[i], 0.0)]],
            fmt="s" if r.get("role") == "teacher" else "o",
            capsize=4,
            markersize=6,
        )
    _annotate(axes, runs, x, y)
    name = METRIC_NAMES.get(metric, metric)
    axes.set_ylabel(name)
    axes.set_title(f"{name} against frames read ({level} CI)")
    axes.margins(x=0.15, y=0.15)
    return _image(figure, f"{name} against frames read")


def _time_plot(comparison: dict) -> str:
    runs = comparison["runs"]
    figure, axes = _figure(6.0, 4.0)
    x = _frames_axis(axes, runs)
    y = np.array([1000 * r["model_seconds_per_video"] for r in runs], dtype=np.float64)
    for i, r in enumerate(runs):
        axes.plot(x[i], y[i], "s" if r.get("role") == "teacher" else "o", markersize=6)
    _annotate(axes, runs, x, y)
    axes.set_ylabel("model time per video (ms)")
    axes.set_title("Inference time against frames read")
    axes.set_ylim(bottom=0)
    axes.margins(x=0.15, y=0.15)
    return _image(figure, "model time against frames read")


def _comparison_plots(comparison: dict, level: str) -> str:
    plots = [
        _metric_plot(comparison, m, level)
        for m in ("gap", "map_nonempty_classes")
        if m in comparison["metrics"]
    ]
    plots.append(_time_plot(comparison))
    cells = "".join(f"<div>{p}</div>" for p in plots)
    return (
        '<h2>Against frames read</h2>\n<p class="caption">Squares are teachers, circles students. '
        "Model time is each run's own measurement (batched inference on its machine), so compare "
        f'times of runs made on the same hardware.</p>\n<div class="grid">{cells}</div>'
    )


def _comparison_notes(comparison: dict) -> str:
    boot = comparison["bootstrap"]
    items = [
        f"Bootstrap: {boot['method']}; {boot['resamples']:,} resamples, confidence {boot['confidence']:g}, "
        f"seed {boot['seed']}.",
        f"Classes: {comparison.get('num_classes')} ({comparison.get('label_space')}); "
        f"top-k {comparison.get('top_k')}.",
    ]
    dropped = comparison.get("videos_dropped") or {}
    if comparison.get("intersect") and any(dropped.values()):
        items.append(
            "Restricted to the videos every run scored (--intersect); left out: "
            + ", ".join(f"{label} {count:,}" for label, count in dropped.items())
            + "."
        )
    return "<h2>Method</h2>\n<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"
