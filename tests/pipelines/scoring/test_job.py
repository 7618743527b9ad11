"""The Beam evaluation and prediction jobs end to end, against the export scored directly."""

import csv
import json
import pathlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import predict, runner
from pipelines.datasets import ownership
from pipelines.records import tfrecord_io
from pipelines.scoring import job as scoring_job
from pipelines.scoring import outputs as out
from pipelines.synth import SynthConfig, generate
from schemas import features as F
from schemas import raw
from schemas.views import View
from tests.conftest import make_dataset, random_frames, train_job
from tests.pipelines.scoring.conftest import read_records, tiny_raw_in_two_shards, write_three_bad_records
from trainer import inputs
from trainer.export import LoadedExport
from trainer.metrics import MetricsAccumulator


def _labels(record: bytes) -> tuple[str, list[int]]:
    import tensorflow as tf

    context = tf.train.SequenceExample.FromString(record).context.feature
    return context[F.ID].bytes_list.value[0].decode(), list(context[F.LABELS].int64_list.value)


def _evaluate(*argv, labels=True):
    job = scoring_job if labels else predict
    return job.run([*argv, "--direct_num_workers", "1"])


def _score(model, input, output, *flags, labels=True):
    """`_evaluate` of `model` on `input` into `output` (paths or strings), with `flags` after them."""
    return _evaluate(
        "--model", str(model), "--input", str(input), "--output", str(output), *flags, labels=labels
    )


def _synthetic_shards(directory, **config) -> None:
    """One shard of synthetic frame-level videos (8 classes, seed 5) under `directory`."""
    generate(str(directory), SynthConfig(kind="frame", shards=1, classes=8, seed=5, **config), progress=False)


def _jsonl(directory, prefix) -> list[dict]:
    lines = []
    for path in sorted(pathlib.Path(directory).glob(f"{prefix}-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return lines


def _predictions_csv(directory) -> dict:
    with open(pathlib.Path(directory) / out.PREDICTIONS_CSV, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["VideoId", "LabelConfidencePairs"]
        rows = {}
        for video_id, pairs in reader:
            values = pairs.split()
            rows[video_id] = ([int(c) for c in values[::2]], [float(s) for s in values[1::2]])
    return rows


@pytest.fixture(scope="module")
def damaged_raw(tmp_path_factory, tiny_frame_dataset):
    """The tiny dataset's raw shards plus a shard of planted bad records."""
    root = tmp_path_factory.mktemp("eval-raw")
    good = tiny_raw_in_two_shards(root, tiny_frame_dataset)
    write_three_bad_records(root / "train0002.tfrecord")
    return root, good


@pytest.fixture(scope="module")
def raw_run(student_export, damaged_raw, tmp_path_factory):
    root, _ = damaged_raw
    output = tmp_path_factory.mktemp("eval-out")
    summary = _score(student_export.parent, f"{root}/train*.tfrecord", output, "--jsonl")
    return output, summary


def _expected(export_dir, records):
    loaded = LoadedExport(str(export_dir))
    scores = loaded.score_examples(records)
    ids = [v.decode() for v in scores["video_id"]]
    labels = [_labels(r)[1] for r in records]
    return loaded, ids, scores["predictions"], labels


def test_metrics_equal_the_export_scored_directly(raw_run, damaged_raw, student_export):
    output, summary = raw_run
    _, good = damaged_raw
    _, ids, predictions, labels = _expected(student_export, good)
    expected = MetricsAccumulator(8, 20).add_batch(predictions, labels).result()
    written = json.loads((output / out.METRICS_FILE).read_text())
    assert written == summary
    for key in ("gap", "map_nonempty_classes", "map_all_classes", "hit_at_1", "perr"):
        assert written[key] == pytest.approx(expected[key], abs=1e-6), key
    assert written["map"] == written["map_nonempty_classes"]
    assert written["num_videos"] == 40 and written["num_positives"] == expected["num_positives"]
    assert set(out.METRICS_KEYS) <= set(written)
    assert written["model"]["role"] == "student" and written["model"]["serving_view"] == "every_n:4"
    assert written["input"]["source"] == "raw" and written["input"]["files"] == 3
    # Frames read: every_n:4 of each video's true length.
    lengths = [len(_decode_frames(r)) for r in good]
    assert written["frames"]["mean_frames_read"] == pytest.approx(
        np.mean([View.parse("every_n:4").num_selected(n) for n in lengths])
    )
    assert written["frames"]["mean_num_frames"] == pytest.approx(np.mean(lengths))
    assert written["timing"]["model_seconds_per_video"] > 0


def _decode_frames(record: bytes):
    import tensorflow as tf

    return tf.train.SequenceExample.FromString(record).feature_lists.feature_list[F.RGB].feature


def test_bad_records_become_dead_letters_and_counts_balance(raw_run):
    output, summary = raw_run
    assert summary["num_records"] == 43 and summary["num_failed"] == 3 and summary["balanced"]
    failed = {
        (pathlib.Path(r["source"]).name, r["record_index"]): r for r in _jsonl(output, out.FAILED_PREFIX)
    }
    assert set(failed) == {("train0002.tfrecord", 0), ("train0002.tfrecord", 1), ("train0002.tfrecord", 2)}
    assert "label 99" in failed[("train0002.tfrecord", 0)]["reason"]
    assert failed[("train0002.tfrecord", 0)]["id"] == "badlabel"
    assert "'audio' has 7" in failed[("train0002.tfrecord", 1)]["reason"]
    assert failed[("train0002.tfrecord", 2)]["stage"] == "parse"


def test_predictions_csv_is_the_top_20_by_score(raw_run, damaged_raw, student_export):
    output, _ = raw_run
    _, good = damaged_raw
    _, ids, predictions, labels = _expected(student_export, good)
    rows = _predictions_csv(output)
    assert sorted(rows) == sorted(ids)
    for i, video_id in enumerate(ids):
        classes, scores = rows[video_id]
        assert len(classes) == 8  # all 8 classes (k = min(20, C))
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores, predictions[i][classes], atol=1e-6)
        assert classes[0] == int(np.argmax(predictions[i]))
    jsonl = {r["id"]: r for r in map(json.loads, (output / out.PREDICTIONS_JSONL).read_text().splitlines())}
    assert jsonl.keys() == rows.keys()
    first = jsonl[ids[0]]["predictions"][0]
    assert first["class"] == rows[ids[0]][0][0] and first["name"] == str(first["class"])


def test_videos_parquet_and_per_class_reproduce_the_metrics(raw_run):
    output, summary = raw_run
    table = out.read_videos(str(output))
    assert table.num_rows == 40 and table.schema.equals(out.VIDEO_SCHEMA, check_metadata=False)
    again = out.accumulator_from_table(table, 8, 20)
    assert again.result()["gap"] == pytest.approx(summary["gap"], abs=1e-12)
    per_class = out.read_per_class(str(output))
    assert [r["class"] for r in per_class] == list(range(8))
    aps = [r["ap"] for r in per_class if r["positives"]]
    assert np.mean(aps) == pytest.approx(summary["map_nonempty_classes"])


def test_report_headline_matches_metrics(raw_run):
    output, summary = raw_run
    html = (output / out.REPORT_FILE).read_text()
    assert "data:image/png;base64," in html and f"{summary['gap']:.4f}" in html


def test_dataset_input_scores_as_raw(student_export, tiny_frame_dataset, raw_run, tmp_path):
    """The dataset's stored every_n:4 view (float16) gives the raw path's metrics within rounding."""
    _, raw_summary = raw_run
    summary = _score(student_export, tiny_frame_dataset, tmp_path, "--no-report")
    assert summary["input"]["source"] == "dataset" and summary["input"]["frames"] == "view"
    assert summary["num_videos"] == 40 and summary["num_failed"] == 0
    assert summary["gap"] == pytest.approx(raw_summary["gap"], abs=0.01)
    assert summary["frames"] == pytest.approx(raw_summary["frames"])


@pytest.fixture(scope="module")
def uniform_job(tiny_frame_dataset, tmp_path_factory):
    """A student reading uniform:3, which the dataset (every_n:4 + full view) does not store."""
    job = tmp_path_factory.mktemp("uniform-job")
    train_job(
        [
            "--train",
            str(tiny_frame_dataset),
            "--job-dir",
            str(job),
            "--mode",
            "student",
            "--student",
            "mean-moe-small",
            "--view",
            "uniform:3",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--verbose",
            "0",
        ]
    )
    return job


def test_whole_videos_of_a_dataset_go_through_score_frames(uniform_job, tiny_frame_dataset, tmp_path):
    """A uniform:3 model on a dataset storing every_n:4 reads the full view and cuts its own."""

    summary = _score(uniform_job, tiny_frame_dataset, tmp_path, "--no-report")
    assert summary["input"]["frames"] == "whole"
    loaded = LoadedExport(str(uniform_job / "export"))
    lengths = []
    layout, _ = inputs.load_layout(str(tiny_frame_dataset))
    acc = MetricsAccumulator(8, 20)
    for batch in inputs.parquet_batches(
        str(tiny_frame_dataset), 16, columns=[F.ID, F.LABELS, "full_rgb", "full_audio"]
    ):
        frames = {f: batch[F.full_view_column(f)].astype(np.float32) for f in F.FRAME_FEATURES}
        result = loaded.score_frames(frames, batch["full_rgb_length"])
        acc.add_batch(result["predictions"], list(batch[F.LABELS]))
        lengths += batch["full_rgb_length"].tolist()
    assert summary["frames"]["mean_frames_read"] == pytest.approx(np.mean(np.minimum(lengths, 3)))
    assert summary["gap"] == pytest.approx(acc.result()["gap"], abs=1e-6)


def test_mismatched_inputs_are_refused_before_any_work(student_export, tmp_path):
    other_classes = make_dataset(tmp_path / "c", videos=6, classes=5, view="every_n:4", teacher_view=False)
    with pytest.raises(scoring_job.UsageError, match="has 5 classes but the model was trained on 8"):
        _evaluate(
            "--model", str(student_export), "--input", str(other_classes), "--output", str(tmp_path / "o")
        )
    other_view = make_dataset(tmp_path / "v", videos=6, classes=8, view="every_n:3", teacher_view=False)
    with pytest.raises(
        runner.UsageError, match=r"stores view every_n:3 without the full view.*reads every_n:4"
    ):
        _evaluate("--model", str(student_export), "--input", str(other_view), "--output", str(tmp_path / "o"))
    video = make_dataset(tmp_path / "w", videos=6, classes=8, kind="video")
    with pytest.raises(scoring_job.UsageError, match="model is frame-level but dataset .* is video-level"):
        _evaluate("--model", str(student_export), "--input", str(video), "--output", str(tmp_path / "o"))
    with pytest.raises(scoring_job.UsageError, match="neither a fewframes export nor a training job dir"):
        _evaluate("--model", str(tmp_path), "--input", str(video), "--output", str(tmp_path / "o"))
    code = scoring_job.main(
        ["--model", str(student_export), "--input", str(video), "--output", str(tmp_path / "o")]
    )
    assert code == 2


def test_an_output_holding_files_needs_overwrite(student_export, tiny_frame_dataset, tmp_path):
    (tmp_path / out.METRICS_FILE).write_text("{}")
    with pytest.raises(scoring_job.UsageError, match="pass --overwrite"):
        _evaluate(
            "--model", str(student_export), "--input", str(tiny_frame_dataset), "--output", str(tmp_path)
        )
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(scoring_job.UsageError, match="no evaluation wrote"):
        _score(student_export, tiny_frame_dataset, tmp_path, "--overwrite")
    assert (tmp_path / "notes.txt").exists()


def _fake_evaluation(directory: pathlib.Path) -> dict:
    """An evaluation output's files as today's evaluate names them; path -> contents."""
    directory.mkdir(parents=True)
    files = {
        directory / out.METRICS_FILE: "{}",
        directory / out.PREDICTIONS_CSV: "VideoId,LabelConfidencePairs\n",
        directory / "failed-00000-of-00001.jsonl": "",
    }
    for path, text in files.items():
        path.write_text(text)
    return files


def test_evaluate_overwrite_keeps_a_sibling_output_named_by_a_glob(
    student_export, tiny_frame_dataset, tmp_path
):
    sibling = _fake_evaluation(tmp_path / "eval" / "run1")
    with pytest.raises(scoring_job.UsageError, match=r"glob characters \(\*\?\[\)"):
        _evaluate("--model", str(student_export), "--input", str(tiny_frame_dataset),
                  "--output", str(tmp_path / "eval" / "run?"), "--overwrite")  # fmt: skip
    assert {path: path.read_text() for path in sibling} == sibling
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["run1"]


def test_evaluate_overwrite_deletes_only_the_files_an_evaluation_wrote(
    student_export, tiny_frame_dataset, tmp_path
):
    output = tmp_path / "eval"
    earlier = _fake_evaluation(output)
    (output / "failed-cases-i-checked.txt").write_text("mine")
    argv = ["--model", str(student_export), "--input", str(tiny_frame_dataset), "--output", str(output)]
    with pytest.raises(scoring_job.UsageError, match=r"no evaluation wrote: failed-cases-i-checked.txt;"):
        _evaluate(*argv, "--overwrite")
    assert all(path.read_text() == text for path, text in earlier.items())
    (output / "failed-cases-i-checked.txt").unlink()
    summary = _evaluate(*argv, "--overwrite", "--no-report")
    assert json.loads((output / out.METRICS_FILE).read_text())["num_videos"] == summary["num_videos"] == 40
    assert not (output / "failed-00000-of-00001.jsonl").read_text()  # this run's (empty) dead letters
    owned = json.loads((output / ownership.OWNED_NAME).read_text())
    assert owned["kind"] == "evaluation" and owned["shards"] == owned["trees"] == []
    assert owned["files"] == sorted(p.name for p in output.iterdir() if p.name != ownership.OWNED_NAME)
    # A dataset is not an evaluation's to replace, record or not.
    with pytest.raises(scoring_job.UsageError, match=r"no evaluation wrote \(a fewframes dataset output\)"):
        _evaluate(*argv[:-1], str(tiny_frame_dataset), "--overwrite")


def test_a_link_inside_an_evaluation_output_is_refused_and_its_target_untouched(
    student_export, tiny_frame_dataset, tmp_path
):
    elsewhere = _fake_evaluation(tmp_path / "elsewhere")
    output = tmp_path / "eval"
    output.mkdir()
    (output / "old").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    argv = ["--model", str(student_export), "--input", str(tiny_frame_dataset), "--output", str(output)]
    with pytest.raises(scoring_job.UsageError, match="holds a link, old -> .*elsewhere"):
        _evaluate(*argv, labels=False)
    with pytest.raises(scoring_job.UsageError, match="holds a link, old -> .*elsewhere"):
        _evaluate(*argv, "--overwrite")
    assert {path: path.read_text() for path in elsewhere} == elsewhere
    assert [p.name for p in output.iterdir()] == ["old"]


def test_predict_on_unlabelled_test_shards_with_a_category_filter(student_export, tmp_path):
    _synthetic_shards(tmp_path / "raw", videos=12, min_frames=5, max_frames=60, partition="test")
    summary = _score(student_export, f"{tmp_path}/raw/test*.tfrecord", tmp_path / "all", labels=False)
    assert summary["num_videos"] == 12 and "gap" not in summary
    assert not (tmp_path / "all" / out.METRICS_FILE).exists()
    rows = _predictions_csv(tmp_path / "all")
    assert len(rows) == 12
    # Keep the videos whose top entries give class "3" a score of at least the median.
    threshold = float(np.median([dict(zip(*row, strict=True))[3] for row in rows.values()]))
    _score(
        student_export,
        f"{tmp_path}/raw/test*.tfrecord",
        tmp_path / "some",
        "--only-label",
        "3",
        "--only-min-score",
        str(threshold),
        labels=False,
    )
    kept = _predictions_csv(tmp_path / "some")
    assert set(kept) == {v for v, row in rows.items() if dict(zip(*row, strict=True))[3] >= threshold}
    assert 0 < len(kept) < 12
    with pytest.raises(scoring_job.UsageError, match="no class is named 'nope'"):
        _score(
            student_export,
            f"{tmp_path}/raw/test*.tfrecord",
            tmp_path / "x",
            "--only-label",
            "nope",
            labels=False,
        )


def test_segment_map_on_rated_segments(student_export, tmp_path):
    _synthetic_shards(
        tmp_path / "raw", videos=16, min_frames=20, max_frames=60, segments=True, partition="validate"
    )
    summary = _score(
        student_export,
        f"{tmp_path}/raw/validate*.tfrecord",
        tmp_path / "o",
        "--no-report",
        "--segment-k",
        "3",
    )
    import tensorflow as tf

    loaded = LoadedExport(str(student_export))
    ratings = {}  # class -> [(score, positive)]
    for record in read_records(f"{tmp_path}/raw/validate*.tfrecord"):
        example = tf.train.SequenceExample.FromString(record)
        context = example.context.feature
        frames = {
            f: np.stack(
                [
                    np.frombuffer(x.bytes_list.value[0], np.uint8)
                    for x in example.feature_lists.feature_list[f].feature
                ]
            )
            for f in F.FRAME_FEATURES
        }
        for start, end, label, score in zip(
            context[F.SEGMENT_START_TIMES].int64_list.value,
            context[F.SEGMENT_END_TIMES].int64_list.value,
            context[F.SEGMENT_LABELS].int64_list.value,
            context[F.SEGMENT_SCORES].float_list.value,
            strict=True,
        ):
            from schemas.quantization import dequantize

            segment = {f: dequantize(frames[f][start:end])[None] for f in F.FRAME_FEATURES}
            prediction = loaded.score_frames(segment, [end - start])["predictions"][0, label]
            ratings.setdefault(label, []).append((float(prediction), score > 0))
    aps = []
    for entries in ratings.values():
        positives = sum(p for _, p in entries)
        if positives == 0:
            continue
        ranked = sorted(entries, key=lambda e: (-e[0], e[1]))[:3]  # top 3, negatives first on ties
        hits, total = 0, 0.0
        for rank, (_, positive) in enumerate(ranked, start=1):
            if positive:
                hits += 1
                total += hits / rank
        aps.append(total / min(3, positives))
    segments = summary["segments"]
    assert segments["num_rated_pairs"] == sum(len(v) for v in ratings.values()) > 0
    assert segments["map_at_k"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert segments["k"] == 3


def test_video_parquet_written_by_the_job_reads_with_pyarrow(raw_run):
    output, _ = raw_run
    table = pq.read_table(output / out.VIDEOS_FILE)
    assert set(table.column_names) == set(out.VIDEO_SCHEMA.names)


def test_predictions_csv_reads_back_ids_holding_commas_quotes_and_line_breaks(student_export, tmp_path):
    import pandas as pd

    ids = ["plain", "comma,id", 'quote"id', "line\nbreak", "carriage\rreturn", ' "both",\n']
    rng = np.random.default_rng(3)
    (tmp_path / "raw").mkdir()
    with open(tmp_path / "raw" / "test0000.tfrecord", "wb") as f:
        tfrecord_io.write_records(
            f, [raw.frame_level_record(i.encode(), [], *random_frames(rng, 9)) for i in ids]
        )
    summary = _score(student_export, f"{tmp_path}/raw/test*.tfrecord", tmp_path / "o", labels=False)
    assert summary["num_videos"] == len(ids)
    table = pd.read_csv(tmp_path / "o" / out.PREDICTIONS_CSV, keep_default_na=False)
    assert list(table.columns) == ["VideoId", "LabelConfidencePairs"]
    assert sorted(table["VideoId"]) == sorted(ids)
    assert all(len(pairs.split()) == 2 * 8 for pairs in table["LabelConfidencePairs"])


def _shard_with_labels(path, labels_per_video, seed=4):
    rng = np.random.default_rng(seed)
    records = [
        raw.frame_level_record(f"v{i}".encode(), labels, *random_frames(rng, 8))
        for i, labels in enumerate(labels_per_video)
    ]
    with open(path, "wb") as f:
        tfrecord_io.write_records(f, records)


def test_raw_input_in_another_class_space_is_refused_before_the_run(student_export, tmp_path, capsys):
    # The model scores 8 classes; these shards use 100 (most videos have a label >= 8).
    rng = np.random.default_rng(0)
    _shard_with_labels(tmp_path / "train0000.tfrecord", [list(rng.choice(100, 3)) for _ in range(10)])
    argv = ["--model", str(student_export), "--input", f"{tmp_path}/train*.tfrecord"]
    code = scoring_job.main([*argv, "--output", str(tmp_path / "o")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "not in the model's class space" in error
    assert "outside the model's 8 classes" in error
    assert not (tmp_path / "o").exists()


def test_a_run_that_fails_more_than_the_max_failed_fraction_exits_3_and_keeps_its_outputs(
    student_export, tmp_path, capsys
):
    # 3 of 10 videos carry a class the model does not have: not a majority, so the run
    # starts, dead-letters them and then exits 3 with the outputs and the reason kept.
    _shard_with_labels(tmp_path / "train0000.tfrecord", [[1], [2], [50], [3], [4], [60], [5], [6], [70], [0]])
    argv = ["--model", str(student_export), "--input", f"{tmp_path}/train*.tfrecord", "--no-report"]
    code = scoring_job.main([*argv, "--output", str(tmp_path / "o"), "--direct_num_workers", "1"])
    assert code == runner.EXIT_TOO_MANY_FAILED == 3
    assert "3 of 10 records failed" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "o" / out.METRICS_FILE).read_text())
    assert metrics["num_failed"] == 3 and metrics["balanced"]
    assert metrics["failed_fraction"] == 0.3 and metrics["max_failed_fraction"] == 0.1
    assert metrics["too_many_failed"] and "--max-failed-fraction 0.1" in metrics["too_many_failed_reason"]
    assert (tmp_path / "o" / out.PREDICTIONS_CSV).exists()
    code = scoring_job.main(
        [*argv, "--output", str(tmp_path / "p"), "--direct_num_workers", "1", "--max-failed-fraction", "0.5"]
    )
    assert code == 0
    assert not json.loads((tmp_path / "p" / out.METRICS_FILE).read_text())["too_many_failed"]
