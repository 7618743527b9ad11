"""Serving exports: a TF SavedModel whose signatures run the whole chain in the graph.

Signatures (all return `class_indexes` [B, k] int32 and `scores` [B, k] float32, the
top k classes by score, plus `predictions` [B, C] and `representation` [B, R]):

- `serving_default(example_bytes)`: serialized raw YouTube-8M records as the starter's
  `example_bytes` (frame level: `SequenceExample` with quantized per-frame bytes; video
  level: `Example`), also returning `video_id`. Parse, cap at 300 frames, cut the
  model's view (before decoding, so only kept frames are decoded), dequantize
  (bit-exact table), then the model (which l2-normalises / z-scores inside).
- `score_frames(<features>, num_frames)`: dense dequantized frames of whole videos,
  `[B, T, D_f]` per feature, and each video's frame count; cap + view in the graph.
- `score_view(<features>, num_frames)`: frames already in the model's view (what a
  compact preprocessed dataset stores), `num_frames` = valid rows per video.
- `metadata()`: the export's identity as a JSON string (also `fewframes_export.json`
  beside `saved_model.pb`, readable without TensorFlow).
Video-level models take `mean_rgb` / `mean_audio` in the dense signatures instead.
"""

from __future__ import annotations

import json
import os

import numpy as np

from schemas import features as F
from schemas import raw
from schemas.quantization import dequantize_tf
from schemas.views import View

METADATA_NAME = "fewframes_export.json"
EXPORT_SCHEMA_VERSION = 1


def read_metadata(export_dir: str) -> dict:
    """The export's metadata without loading TensorFlow (local or gs://)."""
    from trainer import storage

    path = storage.join(export_dir, METADATA_NAME)
    if not storage.exists(path):
        raise ValueError(f"{export_dir} is not a fewframes export (no {METADATA_NAME})")
    return json.loads(storage.read_text(path))


class ExportError(ValueError):
    """An export that cannot be loaded or whose metadata file disagrees with its graph."""


def verified_metadata(export_dir: str) -> dict:
    """The metadata of the export's graph (its `metadata` signature, which it is run
    for), after checking that `fewframes_export.json` says the same.

    The file is a copy for readers without TensorFlow; the graph is what scores, so a
    file that disagrees with it (an edited view or class count) is refused rather than
    believed. Any problem, from broken JSON to missing variables: `ExportError`, one line.
    """
    from trainer import storage

    path = storage.join(export_dir, METADATA_NAME)
    try:
        written = json.loads(storage.read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path} is not readable JSON ({_one_line(error)})") from None
    if not isinstance(written, dict):
        raise ExportError(f"{path} holds a JSON {type(written).__name__}, not the export's metadata object")
    for needed in ("saved_model.pb", "variables"):
        if not storage.exists(storage.join(export_dir, needed)):
            raise ExportError(f"{export_dir} is an incomplete export: its {needed} is missing")
    try:
        import tensorflow as tf

        model = tf.saved_model.load(export_dir)
        in_graph = json.loads(model.signatures["metadata"]()["json"].numpy().decode())
    except Exception as error:  # a damaged SavedModel fails in many ways; the message says which
        raise ExportError(
            f"{export_dir} cannot be loaded as a fewframes export ({_one_line(error)})"
        ) from None
    differing = sorted(k for k in set(written) | set(in_graph) if written.get(k) != in_graph.get(k))
    if differing:
        shown = "; ".join(
            f"{k}: file {_short(written.get(k))}, graph {_short(in_graph.get(k))}" for k in differing[:4]
        )
        raise ExportError(
            f"{path} disagrees with the export's metadata signature on {', '.join(differing)} ({shown}): "
            "the graph is what scores, so restore the file or export again"
        )
    return in_graph


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def weights_fingerprint(model) -> str:
    """SHA-256 of a model's weights (shapes, dtypes and values, in model order).

    The same for a trained model, its export and the model rebuilt from its weights
    file, in any process, so a teacher-targets dataset can name the exact teacher that
    computed it. Weight names are left out: Keras numbers unnamed layers per process
    (`dense_3`), so a model rebuilt after others were built has other names.
    """
    import hashlib

    import keras

    digest = hashlib.sha256()
    for index, weight in enumerate(model.weights):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{index}|{value.dtype.str}|{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def export_classifier(classifier, export_dir: str, metadata: dict) -> str:
    """Write `classifier` (a built `FramesClassifier`) as a SavedModel to `export_dir`.

    `metadata` must hold `kind` (frame / video), `view`, `features` and `top_k`.
    """
    import keras
    import tensorflow as tf

    from trainer import storage

    kind, features, top_k = metadata["kind"], tuple(metadata["features"]), int(metadata["top_k"])
    view = View.parse(metadata["view"]).serving_view
    metadata = {**metadata, "export_schema_version": EXPORT_SCHEMA_VERSION, "serving_view": str(view)}
    metadata_json = json.dumps(metadata, sort_keys=True)

    def outputs(frames, mask):
        result = classifier({"frames": frames, "mask": mask}, training=False)
        predictions = tf.cast(result["predictions"], tf.float32)
        k = min(top_k, int(predictions.shape[-1]))
        top = tf.math.top_k(predictions, k=k, sorted=True)
        return {
            "class_indexes": tf.cast(top.indices, tf.int32),
            "scores": top.values,
            "predictions": predictions,
            "representation": tf.cast(result["representation"], tf.float32),
        }

    def masked(frames, counts, width):
        return frames, tf.sequence_mask(counts, width, dtype=tf.float32)

    archive = keras.export.ExportArchive()
    archive.track(classifier)

    if kind == F.VIDEO_LEVEL:
        names = [F.MEAN_FEATURE_OF[f] for f in features]
        spec = {
            name: tf.io.FixedLenFeature([F.FEATURE_DIMS[f]], tf.float32)
            for name, f in zip(names, features, strict=True)
        }
        spec[F.ID] = tf.io.FixedLenFeature([], tf.string, default_value="")
        spec[F.LEGACY_ID] = tf.io.FixedLenFeature([], tf.string, default_value="")

        def video_outputs(vectors):
            frames = tf.concat(vectors, axis=-1)[:, None, :]
            return outputs(frames, tf.ones(tf.shape(frames)[:2], tf.float32))

        def serve_examples(example_bytes):
            parsed = tf.io.parse_example(example_bytes, spec)
            result = video_outputs([parsed[n] for n in names])
            result["video_id"] = tf.where(parsed[F.ID] != "", parsed[F.ID], parsed[F.LEGACY_ID])
            return result

        def score_vectors(*vectors):
            return video_outputs(list(vectors))

        dense_spec = [
            tf.TensorSpec([None, F.FEATURE_DIMS[f]], tf.float32, name=n)
            for n, f in zip(names, features, strict=True)
        ]
        archive.add_endpoint("score_frames", score_vectors, dense_spec)
        archive.add_endpoint("score_view", score_vectors, dense_spec)
    else:
        width = view.max_selected
        context = {
            F.ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
            F.LEGACY_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        }
        sequence = {f: spec for f, spec in raw.sequence_parse_spec().items() if f in features}

        def serve_examples(example_bytes):
            ctx, seq, lengths = tf.io.parse_sequence_example(
                example_bytes, context_features=context, sequence_features=sequence
            )
            count = None
            decoded = []
            for f in features:
                # Cut the view from the byte strings, then decode only the kept frames.
                kept, count = view.gather_padded_tf(seq[f], lengths[f])
                codes = tf.io.decode_raw(kept, tf.uint8, fixed_length=F.FEATURE_DIMS[f])
                decoded.append(dequantize_tf(codes))
            result = outputs(*masked(tf.concat(decoded, axis=-1), count, width))
            result["video_id"] = tf.where(ctx[F.ID] != "", ctx[F.ID], ctx[F.LEGACY_ID])
            return result

        def score_frames(*args):
            *frames, num_frames = args
            kept, count = view.gather_padded_tf(tf.concat(frames, axis=-1), num_frames)
            return outputs(*masked(kept, count, width))

        def score_view(*args):
            *frames, num_frames = args
            frames = tf.concat(frames, axis=-1)
            return outputs(frames, tf.sequence_mask(num_frames, tf.shape(frames)[1], dtype=tf.float32))

        dense_spec = [tf.TensorSpec([None, None, F.FEATURE_DIMS[f]], tf.float32, name=f) for f in features]
        dense_spec.append(tf.TensorSpec([None], tf.int32, name=F.NUM_FRAMES))
        archive.add_endpoint("score_frames", score_frames, dense_spec)
        archive.add_endpoint("score_view", score_view, dense_spec)

    archive.add_endpoint(
        "serving_default", serve_examples, [tf.TensorSpec([None], tf.string, name="example_bytes")]
    )
    archive.add_endpoint("metadata", lambda: {"json": tf.constant(metadata_json)}, [])

    local = export_dir
    if storage.is_remote(export_dir):
        import tempfile

        local = tempfile.mkdtemp(prefix="fewframes-export-")
    archive.write_out(local, verbose=False)
    with open(os.path.join(local, METADATA_NAME), "w") as f:
        f.write(metadata_json)
    if local != export_dir:
        _copy_tree(local, export_dir)
    return export_dir


def _copy_tree(local: str, remote: str) -> None:
    import tensorflow as tf

    for root, _, files in os.walk(local):
        target = remote.rstrip("/") + "/" + os.path.relpath(root, local).replace(os.sep, "/")
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(root, name), f"{target.rstrip('/.')}/{name}", overwrite=True)


class LoadedExport:
    """A loaded export's signatures and metadata (a fresh process or a Beam worker)."""

    def __init__(self, export_dir: str):
        import tensorflow as tf

        self.directory = export_dir
        self.model = tf.saved_model.load(export_dir)
        self.metadata = json.loads(self.model.signatures["metadata"]()["json"].numpy().decode())

    def warm_up(self) -> None:
        """Call each frame and feature signature once on one zero-filled video of one frame.
        A loaded signature's first call builds and optimises its graph (about a quarter of
        a second on a CPU, as much as a thousand videos of a small model); done here, at
        load, it is not charged to the first batch's model time, as TF Serving's warm-up
        requests keep it off the first requests."""
        import tensorflow as tf

        for signature in self.model.signatures.values():
            specs = signature.structured_input_signature[1]
            if not specs or any(spec.dtype == tf.string for spec in specs.values()):
                continue  # metadata has no input; serving_default takes serialized records
            inputs = {}
            for key, spec in specs.items():
                shape = [1 if d is None else d for d in spec.shape]
                inputs[key] = tf.fill(shape, tf.constant(1 if key == F.NUM_FRAMES else 0, spec.dtype))
            signature(**inputs)

    def score_examples(self, example_bytes) -> dict:
        import tensorflow as tf

        out = self.model.signatures["serving_default"](example_bytes=tf.constant(list(example_bytes)))
        return {k: v.numpy() for k, v in out.items()}

    def score_view(self, frames: dict, num_frames) -> dict:
        return self._call("score_view", frames, num_frames)

    def score_frames(self, frames: dict, num_frames) -> dict:
        return self._call("score_frames", frames, num_frames)

    def _call(self, name, frames, num_frames):
        import tensorflow as tf

        inputs = {k: tf.constant(np.asarray(v, np.float32)) for k, v in frames.items()}
        if num_frames is not None and self.metadata["kind"] == F.FRAME_LEVEL:
            inputs[F.NUM_FRAMES] = tf.constant(np.asarray(num_frames, np.int32))
        out = self.model.signatures[name](**inputs)
        return {k: v.numpy() for k, v in out.items()}
