"""Training benchmark, speed: analytic FLOPs and model time, teacher vs student, side by side.

    .venv/bin/python benchmarks/train_speed.py [--reps 5] [--pairs hlstm,dbof,netvlad,nextvlad,mean] \
        [--params JSON]

Analytic multiply-adds per video from the model configs (`flop_count`), and
model time per video at batch 64 on decoded float32 input of 300-frame videos: the
teacher on all 300 frames against the student on its view, side by side in one
process, repetitions interleaved, medians compared. For models without an LSTM the
time is also split into normalization, aggregator (per frame and per video) and head.

Prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # first: this checkout's code, whatever else is installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import train_common as common  # noqa: E402


# ===== FLOPs ================================================================================
def flop_count(
    spec, num_frames: int, input_dim: int = common.INPUT_DIM, num_classes: int = common.NUM_CLASSES
) -> dict:
    """Analytic multiply-adds per video, split into per-frame and per-video parts.

    Counts the multiply-adds of every matmul (dense layers, LSTM gates, VLAD sums) and
    one operation per element for the reductions over frames (mean/max pooling, the
    l2 norm of each frame); activations, softmaxes and masks are left out (each is a
    few operations per output element, far below the matmuls except where noted).
    Returns {"per_frame": {...}, "per_video": {...}, "total": multiply-adds}; one
    FLOP = 2 multiply-adds.
    """
    agg, head = spec.aggregator_config(), spec.head_config()
    D, T = input_dim, num_frames
    frame: dict[str, float] = {"l2 normalization": 2 * D * T}
    video: dict[str, float] = {}

    def lstm_stack(units, layers, width):
        macs = 0
        for _ in range(layers):
            macs += 4 * units * (width + units)
            width = units
        return macs

    def hidden(width, config, gating_reduction=1):
        if not config.hidden_size:
            return width
        video["hidden layer"] = width * config.hidden_size
        if config.gating:
            h = config.hidden_size
            if gating_reduction > 1:
                video["context gating"] = 2 * h * (h // gating_reduction)
            else:
                video["context gating"] = h * h
        return config.hidden_size

    name = spec.aggregator
    if name in ("mean", "max"):
        frame[f"{name} pooling"] = D * T
        rep = D
    elif name == "video":
        rep = D
    elif name == "dbof":
        frame["cluster projection"] = D * agg.cluster_size * T
        frame["pooling"] = agg.cluster_size * T
        rep = hidden(agg.cluster_size, agg)
    elif name == "lstm":
        frame["LSTM steps"] = lstm_stack(agg.units, agg.num_layers, D) * T
        rep = agg.output_dim(D)
    elif name == "hlstm":
        chunks = -(-T // agg.chunk_size)
        # Padded steps of the last chunk are computed (masked, not skipped).
        frame["frame-level LSTM"] = lstm_stack(agg.units, agg.num_layers, D) * chunks * agg.chunk_size
        state = agg.output_dim(D)
        frame["chunk-level LSTM"] = lstm_stack(agg.units, agg.num_layers, state) * chunks
        rep = state
    elif name == "netvlad":
        K = agg.clusters
        frame["soft assignment"] = D * K * T
        frame["VLAD sums"] = K * D * T
        video["residuals + normalizations"] = 3 * K * D
        rep = hidden(K * D, agg)
    elif name == "nextvlad":
        K, G, wide = agg.clusters, agg.groups, agg.expansion * D
        group_dim = agg.group_dim(D)
        frame["expansion"] = D * wide * T
        frame["attention"] = wide * G * T
        frame["soft assignment"] = wide * G * K * T
        frame["VLAD sums"] = K * wide * T
        video["residuals + normalizations"] = 2 * K * group_dim
        rep = hidden(K * group_dim, agg, agg.gating_reduction)
    else:
        raise ValueError(f"no FLOP count for aggregator {name!r}")

    head_macs = 0
    if head.input_context_gating:
        head_macs += rep * rep
    if head.hidden_size:
        head_macs += rep * head.hidden_size
        rep = head.hidden_size
    if spec.head == "moe":
        head_macs += rep * num_classes * (2 * head.num_mixtures + 1)
    else:
        head_macs += rep * num_classes
    if head.context_gating:
        head_macs += num_classes * num_classes
    video[f"{spec.head} head"] = head_macs
    total = sum(frame.values()) + sum(video.values())
    return {"per_frame": frame, "per_video": video, "total": total}


LSTM_AGGREGATORS = ("lstm", "hlstm")


def _decoded_frames(batch: int, frames: int, seed: int = 0):
    """Random quantized frames, dequantized as a dataset stores them, as float32."""
    import numpy as np

    from schemas.quantization import dequantize

    rng = np.random.default_rng(seed)
    return dequantize(rng.integers(0, 256, (batch, frames, common.INPUT_DIM), dtype=np.uint8)).astype(
        np.float32
    )


def _timed(fn, *inputs) -> float:
    start = time.perf_counter()
    out = fn(*inputs)
    (out if not isinstance(out, dict) else next(iter(out.values()))).numpy()
    return time.perf_counter() - start


def speed(args) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from schemas.views import View

    view = View.parse(args.view)
    frames = args.frames
    full = _decoded_frames(args.batch_size, frames)
    lengths = np.full(args.batch_size, frames, np.int32)
    cut, cut_lengths = view.gather_padded(full, lengths)
    inputs = {
        "teacher": (tf.constant(full), tf.sequence_mask(lengths, full.shape[1], tf.float32)),
        "student": (tf.constant(cut), tf.sequence_mask(cut_lengths, cut.shape[1], tf.float32)),
    }
    print(
        f"speed: batch {args.batch_size}, {frames}-frame videos; teacher {full.shape[1]} frames, "
        f"student {view} = {cut.shape[1]} frames; {args.reps} interleaved repetitions; "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads",
        flush=True,
    )
    results = {}
    params = json.loads(args.params)
    for key, label, teacher_preset, student_preset in common._pairs(args.pairs):
        if params:
            label = f"{label} with {json.dumps(params)}"
        models = {
            "teacher": common._classifier(teacher_preset, full.shape[1], params),
            "student": common._classifier(student_preset, cut.shape[1], params),
        }
        flops = {
            "teacher": flop_count(models["teacher"].spec, full.shape[1]),
            "student": flop_count(models["student"].spec, cut.shape[1]),
        }
        functions = {}
        for role, model in models.items():
            functions[role, "model"] = (
                tf.function(lambda f, m, model=model: model({"frames": f, "mask": m})["predictions"]),
                inputs[role],
            )
            if model.spec.aggregator not in LSTM_AGGREGATORS:
                # Components: normalization, aggregator (all frames, and one frame = its
                # per-video part), head.
                f, m = inputs[role]
                normalized = model.normalization(f, m)
                representation = model.classifier.aggregator(normalized, m)
                functions[role, "normalization"] = (tf.function(model.normalization), (f, m))
                functions[role, "aggregator"] = (tf.function(model.classifier.aggregator), (normalized, m))
                functions[role, "aggregator 1 frame"] = (
                    tf.function(model.classifier.aggregator),
                    (normalized[:, :1], m[:, :1]),
                )
                functions[role, "head"] = (tf.function(model.classifier.head), (representation,))
        for fn, fn_inputs in functions.values():  # trace and warm up
            for _ in range(args.warmup):
                _timed(fn, *fn_inputs)
        times = {name: [] for name in functions}
        for _ in range(args.reps):
            for name, (fn, fn_inputs) in functions.items():
                times[name].append(_timed(fn, *fn_inputs))
        medians = {f"{role}/{part}": statistics.median(t) for (role, part), t in times.items()}
        ratios = [t / s for t, s in zip(times["teacher", "model"], times["student", "model"], strict=True)]
        results[key] = {
            "label": label,
            "teacher": teacher_preset,
            "student": student_preset,
            "flops": flops,
            "median_seconds_per_batch": medians,
            "all_seconds": {f"{role}/{part}": t for (role, part), t in times.items()},
            "ratio_of_medians": medians["teacher/model"] / medians["student/model"],
            "paired_ratios": ratios,
        }
        print(
            f"{label}: teacher {medians['teacher/model'] * 1e3:.1f} ms/batch, student "
            f"{medians['student/model'] * 1e3:.1f} ms/batch, ratio {results[key]['ratio_of_medians']:.2f} "
            f"(paired {min(ratios):.2f}-{max(ratios):.2f})",
            flush=True,
        )
        del models, functions
        keras.backend.clear_session()
    common._write_json(os.path.join(args.workdir, "speed", "results.json"), results)
    print()
    print(speed_report(args, results))


def speed_report(args, results: dict) -> str:
    batch = args.batch_size
    lines = [
        f"Analytic cost (GFLOPs, 1 multiply-add = 2 FLOPs) and measured model time per video "
        f"at batch {batch} on decoded float32 input, {args.frames}-frame videos, teacher on all frames, "
        f"student on {args.view}; median of {args.reps} interleaved repetitions.",
        "",
        "| model (teacher → student) | GFLOPs/video teacher | student | FLOP ratio "
        "| ms/video teacher | student | **time ratio** (paired min–max) | GFLOP/s teacher / student |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        med = r["median_seconds_per_batch"]
        t_flops, s_flops = 2 * r["flops"]["teacher"]["total"], 2 * r["flops"]["student"]["total"]
        t_ms, s_ms = med["teacher/model"] / batch * 1e3, med["student/model"] / batch * 1e3
        pair = r["teacher"] if r["teacher"] == r["student"] else f"{r['teacher']} → {r['student']}"
        lines.append(
            f"| {r['label']} (`{pair}`) | {t_flops / 1e9:.3f} | {s_flops / 1e9:.3f} "
            f"| {t_flops / s_flops:.2f} | {t_ms:.2f} | {s_ms:.2f} "
            f"| **{r['ratio_of_medians']:.2f}** ({min(r['paired_ratios']):.2f}–"
            f"{max(r['paired_ratios']):.2f}) "
            f"| {t_flops / t_ms / 1e6:.1f} / {s_flops / s_ms / 1e6:.1f} |"
        )
    pooled = [r for r in results.values() if "student/head" in r["median_seconds_per_batch"]]
    if pooled:
        lines += [
            "",
            "Where the time goes (ms per video, medians; per-video part = aggregator on 1 frame + head):",
            "",
            "| model | role | normalization | aggregator | of which per-video | head | sum of parts "
            "| whole model | per-frame share (time) | per-frame share (FLOPs) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in pooled:
            med = r["median_seconds_per_batch"]
            for role in ("teacher", "student"):
                part = {k.split("/", 1)[1]: v / batch * 1e3 for k, v in med.items() if k.startswith(role)}
                fixed = part["aggregator 1 frame"] + part["head"]
                per_frame = part["normalization"] + max(part["aggregator"] - part["aggregator 1 frame"], 0.0)
                parts_sum = part["normalization"] + part["aggregator"] + part["head"]
                flops = r["flops"][role]
                flop_share = sum(flops["per_frame"].values()) / flops["total"]
                lines.append(
                    f"| {r['label']} | {role} | {part['normalization']:.3f} | {part['aggregator']:.3f} "
                    f"| {part['aggregator 1 frame']:.3f} | {part['head']:.3f} | {parts_sum:.3f} "
                    f"| {part['model']:.3f} | {per_frame / (per_frame + fixed):.0%} | {flop_share:.0%} |"
                )
    lines += ["", "FLOP breakdown per video (GFLOPs; per-frame parts at the role's frame count):", ""]
    for r in results.values():
        for role in ("teacher", "student"):
            f = r["flops"][role]
            items = {**f["per_frame"], **f["per_video"]}
            text = ", ".join(f"{name} {2 * v / 1e9:.4g}" for name, v in items.items())
            lines.append(f"- {r['label']} {role} (`{r[role]}`): {text}")
    return "\n".join(lines)


# ===== command line =========================================================================
def build_parser() -> argparse.ArgumentParser:
    s = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--pairs", default="hlstm,dbof,netvlad,nextvlad,mean")
    s.add_argument("--view", default="every_n:10")
    s.add_argument("--frames", type=int, default=300)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument(
        "--params",
        default="{}",
        help="JSON overrides for teacher and student of every pair, as --teacher-params: "
        '{"aggregator": {...}, "head": {...}}',
    )
    s.add_argument("--workdir", default=common.DEFAULT_WORKDIR)
    return s


def main(argv=None) -> None:
    speed(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
