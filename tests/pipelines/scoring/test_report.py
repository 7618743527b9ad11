"""report.html of an evaluation output: inline images, numbers equal to metrics.json, escaping."""

import pathlib

import numpy as np
import pytest

from pipelines.scoring import outputs as out
from pipelines.scoring import report
from tests.evaluation_fixture import (
    data_values,
    inline_images,
    parse_tags,
    png_size,
    png_size_zlib,
    write_evaluation_dir,
)

HEADLINE = (
    "gap",
    "map_nonempty_classes",
    "map_all_classes",
    "hit_at_1",
    "perr",
    "num_videos",
    "num_failed",
    "num_records",
    "num_positives",
    "top_k",
    "frames.fraction_read",
    "frames.mean_frames_read",
    "timing.model_seconds_per_video",
)


def _lookup(metrics, key):
    for part in key.split("."):
        metrics = metrics[part]
    return metrics


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evaluation")
    metrics = write_evaluation_dir(str(directory), videos=400, classes=40)
    path = report.write_evaluation_report(str(directory))
    return directory, metrics, pathlib.Path(path).read_text(encoding="utf-8")


def test_report_is_written_beside_the_outputs(evaluation):
    directory, _, _ = evaluation
    assert (directory / out.REPORT_FILE).is_file()


def test_every_image_is_an_inline_png_that_decodes(evaluation):
    _, _, page = evaluation
    images = inline_images(page)
    # precision-recall curve, AP by vertical, AP against positives
    assert len(images) == 3
    for data in images:
        width, height = png_size(data)
        assert width >= 300 and height >= 200
        assert png_size_zlib(data) == (width, height)  # the check without PIL agrees
        assert len(data) > 5_000  # a drawn plot, not an empty canvas


def test_headline_numbers_equal_metrics_json(evaluation):
    _, metrics, page = evaluation
    shown = {entry["data-metric"]: entry for entry in data_values(page)}
    for key in HEADLINE:
        assert shown[key]["data-value"] == _lookup(metrics, key), key
        assert shown[key]["id"] == f"metric-{key}"
    # and the visible text is that value, rounded
    assert f">{metrics['gap']:.4f}</td>" in page
    assert f">{metrics['map_nonempty_classes']:.4f}</td>" in page
    assert f">{100 * metrics['frames']['fraction_read']:.1f}%</td>" in page


def test_both_map_conventions_are_named(evaluation):
    _, _, page = evaluation
    assert "mean AP over the 40 classes with at least one positive video" in page
    assert "a class without positives counting 0" in page


def test_page_is_self_contained(evaluation):
    _, _, page = evaluation
    tags = parse_tags(page)
    names = {tag for tag, _ in tags}
    assert not names & {"script", "link", "iframe", "object", "embed"}
    for tag, attrs in tags:
        for attribute in ("src", "href"):
            assert attribute not in attrs or attrs[attribute].startswith("data:image/png;base64,"), (
                tag,
                attrs,
            )
    assert "url(" not in page and "@import" not in page
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_worst_and_best_classes_and_verticals(evaluation):
    directory, _, page = evaluation
    per_class = out.read_per_class(str(directory))
    worst, best, threshold = report.ranked_classes(per_class)
    assert threshold == report.MIN_POSITIVES
    assert len(worst) == len(best) == report.CLASSES_SHOWN
    eligible = sorted(r["ap"] for r in per_class if r["positives"] >= threshold)
    assert [r["ap"] for r in worst] == eligible[:10]
    assert [r["ap"] for r in best] == eligible[::-1][:10]
    assert f"<td>{best[0]['name']}</td>" in page and f"<td>{worst[0]['name']}</td>" in page
    summary = report.vertical_summary(per_class)
    assert sum(s["classes"] for s in summary) == sum(1 for r in per_class if r["positives"] > 0)
    games = [r["ap"] for r in per_class if r["vertical"] == "Games" and r["positives"] > 0]
    assert next(s for s in summary if s["vertical"] == "Games")["mean_ap"] == pytest.approx(np.mean(games))
    assert "Arts &amp; Entertainment" in page


def test_malicious_class_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    write_evaluation_dir(
        str(tmp_path),
        videos=200,
        classes=12,
        names=[f"{evil} {c}" for c in range(12)],
        verticals=[f'<b onclick="steal()">V{c % 2}</b>' for c in range(12)],
    )
    page = pathlib.Path(report.write_evaluation_report(str(tmp_path))).read_text()
    tags = parse_tags(page)
    assert not any(tag in ("script", "b") for tag, _ in tags)
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in tags if t == "img")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b onclick=&quot;steal()&quot;&gt;V0&lt;/b&gt;" in page
    assert "<script" not in page.lower()


def test_a_vertical_that_reads_as_mathtext_is_drawn_as_plain_text(tmp_path):
    # `$\bad$` is a mathtext expression matplotlib cannot parse; the label is data, not math.
    verticals = ["Cost $\\bad$" if c % 2 else "Arts" for c in range(12)]
    write_evaluation_dir(str(tmp_path), videos=200, classes=12, verticals=verticals)
    page = pathlib.Path(report.write_evaluation_report(str(tmp_path))).read_text()
    assert "Cost $\\bad$" in page and len(inline_images(page)) == 3


def test_segment_map_shown_when_present(tmp_path):
    segments = {"map_at_k": 0.6125, "k": 100000, "num_rated_pairs": 1234, "num_classes_with_positives": 9}
    write_evaluation_dir(str(tmp_path), videos=100, classes=10, segments=segments)
    page = pathlib.Path(report.write_evaluation_report(str(tmp_path))).read_text()
    shown = {entry["data-metric"]: entry["data-value"] for entry in data_values(page)}
    assert shown["segments.map_at_k"] == 0.6125
    assert "Segment mAP@100000" in page and "1,234 rated" in page


def test_without_segments_or_verticals(tmp_path):
    write_evaluation_dir(str(tmp_path), videos=100, classes=10, verticals=[""] * 10)
    page = pathlib.Path(report.write_evaluation_report(str(tmp_path))).read_text()
    assert "segments.map_at_k" not in page
    assert "names no verticals" in page
    assert len(inline_images(page)) == 2


def test_few_positives_lower_the_ranking_threshold():
    per_class = [
        {"class": c, "name": str(c), "vertical": "", "ap": c / 10, "positives": 1 + c % 2} for c in range(6)
    ]
    worst, best, threshold = report.ranked_classes(per_class, min_positives=5, count=2)
    assert threshold == 1
    assert [r["class"] for r in worst] == [0, 1] and [r["class"] for r in best] == [5, 4]


def test_curve_downsampling_keeps_both_ends():
    assert report.downsample_indices(10, 100).tolist() == list(range(10))
    indices = report.downsample_indices(2_000_000, 1000)
    assert indices[0] == 0 and indices[-1] == 2_000_000 - 1
    assert len(indices) <= 1002 and np.all(np.diff(indices) > 0)
    assert (indices < 100).sum() >= 20  # dense where precision moves most


def test_not_an_evaluation_output(tmp_path):
    with pytest.raises(ValueError, match="not an evaluation output"):
        report.write_evaluation_report(str(tmp_path))
