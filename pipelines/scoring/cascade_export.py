"""A cascade as one SavedModel: `fewframes cascade export DIR --output EXPORT`.

`serving_default(example_bytes)` runs the cascade in the graph: the raw records are
parsed once (frames stay byte strings); each stage takes the rows still running, cuts
its view from their byte strings and decodes only those frames, runs the stage's own
`score_view` signature (the stage exports inside the cascade dir, embedded), and the exit
rule of `pipelines.scoring.cascade` (the same arithmetic, in float64) decides which rows
leave. It returns `class_indexes` and `scores` (top k of the exit stage's predictions,
k = the cascade's top_k), `predictions` [B, C], `video_id` and `exit_stage` [B] int32.
`metadata()` returns cascade.json's content as JSON; the same text is written beside
the SavedModel as `cascade_export.json`. (It is not a fewframes stage export: it has no
`score_view`, and no `fewframes_export.json`, so it cannot be mistaken for one.)
"""

from __future__ import annotations

import json
import os

from pipelines.scoring import cascade as C
from schemas import features as F
from schemas import raw
from schemas.quantization import dequantize_tf
from schemas.views import View

EXPORT_METADATA_NAME = "cascade_export.json"


def build_module(directory: str, spec: C.CascadeSpec):
    """A tf.Module holding the stage exports and the cascade's serving function."""
    import tensorflow as tf

    from pipelines.scoring.plan import resolve_export

    stages, metadatas = [], []
    for stage in spec.stages:
        export_dir, metadata = resolve_export(C.stage_dir(directory, stage), subdirs=())
        stages.append(tf.saved_model.load(export_dir))
        metadatas.append(metadata)
    C.check_same_space(metadatas)
    features = tuple(metadatas[-1]["features"])
    num_classes = int(metadatas[-1]["num_classes"])
    views = [View.parse(stage.view) for stage in spec.stages]
    k = min(spec.top_k, num_classes)
    spec_json = json.dumps(spec.to_dict(), sort_keys=True)
    context = {
        F.ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        F.LEGACY_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    sequence = {f: s for f, s in raw.sequence_parse_spec().items() if f in features}
    rule = spec.rule

    def exit_scores(stage, top, previous, count):
        """[m] float64 exit scores (`ExitRule.scores` in the graph)."""
        if rule.name == C.RULE_TOP1:
            return tf.cast(top.values[:, 0], tf.float64)
        if rule.name == C.RULE_AGREEMENT:
            if stage == 0:
                return tf.fill(tf.shape(top.values)[:1], tf.constant(-float("inf"), tf.float64))
            width = min(rule.agreement_k, k)
            mine, theirs = top.indices[:, :width], previous[:, :width]
            shared = tf.reduce_any(tf.equal(mine[:, :, None], theirs[:, None, :]), axis=2)
            return tf.reduce_sum(tf.cast(shared, tf.float64), axis=1) / width
        gate = rule.gates[stage]
        width = min(C.GATE_SCORES, k)
        scores = tf.cast(top.values[:, :width], tf.float64)
        scores = tf.pad(scores, [[0, 0], [0, C.GATE_SCORES - width]])
        frames = tf.cast(count, tf.float64)[:, None] / F.MAX_FRAMES
        x = tf.concat([scores, frames], axis=1)
        z = (x - tf.constant(gate.means, tf.float64)) / tf.constant(gate.scales, tf.float64)
        logit = tf.linalg.matvec(z, tf.constant(gate.weights, tf.float64)) + gate.bias
        return 0.5 * (1.0 + tf.tanh(0.5 * logit))

    class CascadeModule(tf.Module):
        def __init__(self):
            super().__init__()
            self.stages = stages

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="example_bytes")])
        def serve(self, example_bytes):
            ctx, seq, lengths = tf.io.parse_sequence_example(
                example_bytes, context_features=context, sequence_features=sequence
            )
            n = tf.shape(example_bytes)[0]
            running = tf.range(n)
            predictions = tf.zeros([n, num_classes], tf.float32)
            exit_stage = tf.fill([n], len(views) - 1)
            previous = None
            for s, view in enumerate(views):
                decoded, count = {}, None
                for f in features:
                    kept, count = view.gather_padded_tf(
                        tf.gather(seq[f], running), tf.gather(lengths[f], running)
                    )
                    codes = tf.io.decode_raw(kept, tf.uint8, fixed_length=F.FEATURE_DIMS[f])
                    decoded[f] = dequantize_tf(codes)
                out = self.stages[s].signatures["score_view"](**decoded, **{F.NUM_FRAMES: count})
                stage_predictions = out["predictions"]
                top = tf.math.top_k(stage_predictions, k=k, sorted=True)
                if s == len(views) - 1:
                    leave = tf.ones(tf.shape(running), tf.bool)
                elif spec.thresholds[s] is None:
                    leave = tf.zeros(tf.shape(running), tf.bool)
                else:
                    leave = exit_scores(s, top, previous, count) >= tf.constant(
                        spec.thresholds[s], tf.float64
                    )
                leaving = tf.boolean_mask(running, leave)
                predictions = tf.tensor_scatter_nd_update(
                    predictions, leaving[:, None], tf.boolean_mask(stage_predictions, leave)
                )
                exit_stage = tf.tensor_scatter_nd_update(
                    exit_stage, leaving[:, None], tf.fill(tf.shape(leaving), s)
                )
                previous = tf.boolean_mask(top.indices, tf.logical_not(leave))
                running = tf.boolean_mask(running, tf.logical_not(leave))
            top = tf.math.top_k(predictions, k=k, sorted=True)
            return {
                "class_indexes": tf.cast(top.indices, tf.int32),
                "scores": top.values,
                "predictions": predictions,
                "exit_stage": tf.cast(exit_stage, tf.int32),
                "video_id": tf.where(ctx[F.ID] != "", ctx[F.ID], ctx[F.LEGACY_ID]),
            }

        @tf.function(input_signature=[])
        def metadata(self):
            return {"json": tf.constant(spec_json)}

    return CascadeModule(), spec_json


def export_cascade(directory: str, output: str) -> str:
    """Write the cascade in `directory` as one SavedModel in `output` (a local directory)."""
    import tensorflow as tf

    spec = C.read_cascade(directory)
    module, spec_json = build_module(directory, spec)
    tf.saved_model.save(
        module, output, signatures={"serving_default": module.serve, "metadata": module.metadata}
    )
    with open(os.path.join(output, EXPORT_METADATA_NAME), "w") as stream:
        stream.write(spec_json)
    return output
