"""The z-score parameters a dataset stores: data to read, never a graph to run.

TFT's `scale_to_z_score` is an affine map per dimension, `(x - mean) / scale`, where
`scale` is the standard deviation, or 1 where it is 0 (TFT then returns `x - mean`).
Preprocessing writes `mean` and that `scale` as float32 arrays in
`transform/zscore.npz` and records the file's sha256 in the manifest; the trainer reads
them with numpy (`allow_pickle=False`) and checks the checksum. The TFT SavedModel
(`transform/transform_fn`) stays beside them for TFT users; nothing here executes it.

A dataset written before the arrays existed holds only the SavedModel. Its parameters
are constants in the SavedModel's GraphDef, and `parameters_from_saved_model` reads
them from `saved_model.pb` as a protobuf (reading data, not running a graph).
"""

from __future__ import annotations

import hashlib
import io
import posixpath

import numpy as np

from schemas import features as F

PARAMETERS_NAME = "zscore.npz"  # in the dataset's transform directory
DIM = sum(F.FEATURE_DIMS[f] for f in F.FRAME_FEATURES)
MEAN, SCALE = "mean", "scale"


class ZScoreError(ValueError):
    """Z-score parameters that cannot be read or trusted; the message is one line."""


def scale_from_variance(variance: np.ndarray) -> np.ndarray:
    """The divisor `scale_to_z_score` applies: sqrt(variance) in float32, 1 where it is 0."""
    std = np.sqrt(np.asarray(variance, np.float32))
    return np.where(std != 0, std, np.float32(1)).astype(np.float32)


def encode(mean: np.ndarray, scale: np.ndarray) -> bytes:
    """The bytes of a `zscore.npz` holding float32 `mean` and `scale`."""
    mean, scale = _checked(np.asarray(mean), np.asarray(scale), "the z-score parameters")
    buffer = io.BytesIO()
    np.savez(buffer, **{MEAN: mean, SCALE: scale})
    return buffer.getvalue()


def decode(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) from a `zscore.npz`'s bytes; objects (pickles) are refused."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if set(arrays.files) != {MEAN, SCALE}:
                raise ZScoreError(f"{source} holds {sorted(arrays.files)}, expected {MEAN} and {SCALE}")
            mean, scale = arrays[MEAN], arrays[SCALE]
    except ZScoreError:
        raise
    except Exception as error:  # a damaged zip, an object array: not a parameters file
        raise ZScoreError(f"{source} is not a z-score parameters file ({error})") from None
    return _checked(mean, scale, source)


def _checked(mean: np.ndarray, scale: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    for name, array in ((MEAN, mean), (SCALE, scale)):
        if array.dtype != np.float32 or array.shape != (DIM,):
            raise ZScoreError(
                f"{source}: {name} is {array.dtype} {list(array.shape)}, expected float32 [{DIM}]"
            )
        if not np.all(np.isfinite(array)):
            raise ZScoreError(f"{source}: {name} is not finite everywhere")
    if np.any(scale <= 0):
        raise ZScoreError(f"{source}: {SCALE} must be positive everywhere")
    return mean, scale


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dataset_path(dataset_dir: str, relative, what: str) -> str:
    """`dataset_dir`/`relative` for a path a manifest names, which must stay inside the dataset."""
    if not isinstance(relative, str) or not relative:
        raise ZScoreError(f"the manifest's {what} is {relative!r}, not a path inside the dataset")
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith(("/", "\\")) or "://" in relative or ":" in parts[0] or ".." in parts:
        raise ZScoreError(
            f"the manifest's {what} {relative!r} leaves the dataset: paths in a manifest are relative "
            "to the dataset and stay inside it"
        )
    joined = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    return f"{dataset_dir.rstrip('/')}/{joined}"


# The ops of the function `tft.scale_to_z_score(x, elementwise=True)` traces in TFT 1.x.
_Z_SCORE_OPS = sorted(
    ["Identity", "Sub", "ZerosLike", "Sqrt", "NotEqual", "Cast", "AddV2", "Cast", "RealDiv", "SelectV2"]
    + ["Const", "Identity"]
)


def parameters_from_saved_model(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) read from the constants of a `transform_fn/saved_model.pb` that
    `pipelines.datasets.transform.preprocessing_fn` analysed; a graph of any other shape is refused.

    The z-score function takes `inputs` and, as captured arguments, the mean (the second
    operand of `scale_to_z_score/sub`) and the variance (the operand of
    `scale_to_z_score/Sqrt`); the object graph binds captured arguments to the graph's
    constants in order.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except DecodeError:
        raise ZScoreError(f"{source} is not a SavedModel") from None
    if len(saved_model.meta_graphs) != 1:
        raise ZScoreError(f"{source} has {len(saved_model.meta_graphs)} meta graphs, expected 1")
    meta_graph = saved_model.meta_graphs[0]
    functions = [
        f
        for f in meta_graph.graph_def.library.function
        if any(n.name == "scale_to_z_score/sub" for n in f.node_def)
    ]
    if len(functions) != 1 or sorted(n.op for n in functions[0].node_def) != _Z_SCORE_OPS:
        raise ZScoreError(f"{source} is not the z-score analysis fewframes writes")
    function = functions[0]
    by_op = {n.op: n for n in function.node_def}  # Sub and Sqrt occur once each (checked above)
    mean_arg, variance_arg = by_op["Sub"].input[1], by_op["Sqrt"].input[0]
    arguments = [a.name for a in function.signature.input_arg]
    concrete = meta_graph.object_graph_def.concrete_functions.get(function.signature.name)
    bound = list(concrete.bound_inputs) if concrete is not None else []
    captured = dict(zip(arguments[len(arguments) - len(bound) :], bound, strict=True)) if bound else {}
    if mean_arg not in captured or variance_arg not in captured or mean_arg == variance_arg:
        raise ZScoreError(f"{source}: the z-score's mean and variance are not constants of the graph")
    constants = {n.name: n for n in meta_graph.graph_def.node if n.op == "Const"}
    objects = meta_graph.object_graph_def.nodes

    def constant(argument: str) -> np.ndarray:
        import tensorflow as tf

        node_id = captured[argument]
        if node_id >= len(objects) or objects[node_id].WhichOneof("kind") != "constant":
            raise ZScoreError(f"{source}: argument {argument} is not bound to a constant")
        node = constants.get(objects[node_id].constant.operation)
        if node is None:
            raise ZScoreError(f"{source}: argument {argument} names no constant of the graph")
        return tf.make_ndarray(node.attr["value"].tensor)

    mean, variance = constant(mean_arg), constant(variance_arg)
    if variance.dtype != np.float32 or variance.shape != (DIM,) or np.any(~(variance >= 0)):
        raise ZScoreError(f"{source}: the variance is not {DIM} non-negative float32 values")
    return _checked(mean, scale_from_variance(variance), source)
