"""Our side of a Dataflow run: the job graph builds for DataflowRunner without submitting."""

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

from pipelines import preprocess
from pipelines.scoring import job as scoring_job
from pipelines.scoring import outputs
from pipelines.scoring import plan as scoring_plan
from schemas.preprocessed import DatasetLayout

IMAGE = "europe-west4-docker.pkg.dev/my-project/fewframes/fewframes-dataflow:0.1.0"


def test_preprocess_translates_to_a_dataflow_job_with_our_container(tmp_path):
    argv = [
        "--input",
        "gs://bucket/yt8m/frame/train*.tfrecord",
        "--output",
        "gs://bucket/datasets/train",
        "--format",
        "parquet,tfrecord",
        "--view",
        "every_n:10",
        "--teacher-view",
        "--zscore",
        "--runner",
        "DataflowRunner",
        "--project",
        "my-project",
        "--region",
        "europe-west4",
        "--temp_location",
        "gs://bucket/tmp",
        "--sdk_container_image",
        IMAGE,
        "--dry_run",
        "True",
    ]
    args, beam_args = preprocess.parse_args(argv)
    # TFT creates its temp dir through tf.io.gfile while the graph is built; on Dataflow
    # that is --temp_location on real GCS, offline a local directory stands in.
    args.transform_temp_dir = str(tmp_path)
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(runner=DataflowRunner(), options=options)
    layout = DatasetLayout("frame", teacher_view=True, view="every_n:10")
    files = [FileMetadata(f"gs://bucket/yt8m/frame/train{i:04d}.tfrecord", 1 << 30) for i in range(3)]
    preprocess.build_pipeline(pipeline, args, layout, files)

    result = pipeline.run()  # --dry_run: translated, not submitted

    step_names = {
        t.unique_name.split("/")[0] for t in result.job.proto_pipeline.components.transforms.values()
    }
    for label in (
        "ReadShards",
        "ParseAndValidate",
        "DetectDuplicateIds",
        "WriteParquet",
        "WriteTFRecord",
        "WriteFailures",
        "AnalyzeNormalization",
        "WriteManifest",
    ):
        assert label in step_names, label
    images = {env.payload for env in result.job.proto_pipeline.components.environments.values()}
    assert any(IMAGE.encode() in payload for payload in images)


def test_evaluate_translates_to_a_dataflow_job_with_our_container(student_export):
    from pipelines.records.parse import ParseConfig
    from schemas.views import View
    from trainer.export import read_metadata

    metadata = read_metadata(str(student_export))
    argv = ["--model", "gs://bucket/jobs/student", "--input", "gs://bucket/yt8m/frame/validate*.tfrecord",
            "--output", "gs://bucket/eval/student", "--jsonl", "--runner", "DataflowRunner",
            "--project", "my-project", "--region", "europe-west4", "--temp_location", "gs://bucket/tmp",
            "--sdk_container_image", IMAGE, "--dry_run", "True"]  # fmt: skip
    args, beam_args = scoring_job.parse_args(argv)
    plan = scoring_plan.ScoringPlan(
        export_dir="gs://bucket/jobs/student/export",
        metadata=metadata,
        source=scoring_plan.RAW,
        kind="frame",
        patterns=tuple(args.input),
        files=("gs://bucket/yt8m/frame/validate0000.tfrecord",),
        input_bytes=1 << 30,
        frames=scoring_plan.VIEW_FRAMES,
        segments=True,
        parse_config=ParseConfig(
            "frame", 8, View.parse("every_n:4"), "float32", teacher_view=True, segments=True
        ),
    )
    pipeline = beam.Pipeline(runner=DataflowRunner(), options=PipelineOptions(beam_args))
    scoring_job.build_pipeline(pipeline, args, plan, outputs.ClassNames(metadata, None))

    result = pipeline.run()  # --dry_run: translated, not submitted

    step_names = {
        t.unique_name.split("/")[0] for t in result.job.proto_pipeline.components.transforms.values()
    }
    for label in ("ReadVideos", "ScoreVideos", "Metrics", "ScoreSegments", "WriteVideos", "WriteCsv",
                  "WriteJsonl", "WriteFailures", "WriteSummary"):  # fmt: skip
        assert label in step_names, label
    images = {env.payload for env in result.job.proto_pipeline.components.environments.values()}
    assert any(IMAGE.encode() in payload for payload in images)


def test_teacher_targets_translates_to_a_dataflow_job_with_our_container(student_export):
    from pipelines import teacher_targets
    from schemas.targets import TargetsEncoding
    from schemas.views import View
    from trainer.export import read_metadata

    metadata = {**read_metadata(str(student_export)), "role": "teacher", "view": "all", "serving_view": "all"}
    argv = ["--teacher", "gs://bucket/jobs/teacher", "--input", "gs://bucket/datasets/train",
            "--output", "gs://bucket/datasets/train_targets", "--format", "parquet,tfrecord",
            "--runner", "DataflowRunner", "--project", "my-project", "--region", "europe-west4",
            "--temp_location", "gs://bucket/tmp", "--sdk_container_image", IMAGE,
            "--dry_run", "True"]  # fmt: skip
    args, beam_args = teacher_targets.parse_args(argv)
    plan = teacher_targets.TargetsPlan(
        scoring=scoring_plan.ScoringPlan(
            export_dir="gs://bucket/jobs/teacher/export",
            metadata=metadata,
            source=scoring_plan.DATASET,
            kind="frame",
            patterns=("gs://bucket/datasets/train",),
            files=("gs://bucket/datasets/train/parquet/part-00000-of-00001.parquet",),
            input_bytes=1 << 30,
            frames=scoring_plan.WHOLE_VIDEOS,
            segments=False,
            layout=DatasetLayout("frame", teacher_view=True, view="every_n:10"),
            dataset_format="parquet",
        ),
        view=View.parse("every_n:10"),
        encoding=TargetsEncoding.parse("top_k:4"),
        layout=DatasetLayout(
            "frame", view="every_n:10", teacher_targets="top_k:4", num_classes=8, representation_dim=64
        ),
        input_manifest={"num_classes": 8, "formats": ["parquet"], "partition": "train"},
    )
    pipeline = beam.Pipeline(runner=DataflowRunner(), options=PipelineOptions(beam_args))
    teacher_targets.build_pipeline(pipeline, args, plan)

    result = pipeline.run()  # --dry_run: translated, not submitted

    step_names = {
        t.unique_name.split("/")[0] for t in result.job.proto_pipeline.components.transforms.values()
    }
    for label in ("ReadFullView", "ComputeTeacherTargets", "WriteParquet", "WriteTFRecord", "WriteFailures",
                  "WriteManifest"):  # fmt: skip
        assert label in step_names, label
    images = {env.payload for env in result.job.proto_pipeline.components.environments.values()}
    assert any(IMAGE.encode() in payload for payload in images)
