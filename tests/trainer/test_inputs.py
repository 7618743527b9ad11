"""The trainer's input plans and readers: both formats give the same batches."""

import numpy as np
import pytest

from schemas import features as F
from schemas.views import View
from trainer import inputs
from trainer import inputs as I
from trainer.config import ENTITIES, PARALLEL, SERIAL, STUDENT, TEACHER, VERTICALS
from trainer.labels import LabelSpace

LABELS = LabelSpace.build(ENTITIES, 8, None)


def _collect(batches):
    xs, ys = [], []
    for x, y in batches:
        xs.append({k: np.asarray(v) for k, v in x.items()})
        ys.append(np.asarray(y))
    return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, np.concatenate(ys)


@pytest.mark.parametrize(
    "mode,view",
    [(TEACHER, "every_n:4"), (PARALLEL, "every_n:3"), (STUDENT, "every_n:4"), (SERIAL, "uniform:5")],
)
def test_tfrecord_and_parquet_readers_give_identical_batches(tiny_frame_dataset, mode, view):
    plan = I.plan_inputs(str(tiny_frame_dataset), mode, View.parse(view), F.FRAME_FEATURES, LABELS)
    tf_x, tf_y = _collect(I.tf_dataset(plan, 16, with_ids=True))
    np_x, np_y = _collect(I.numpy_batches(plan, 16, with_ids=True))
    assert sorted(tf_x) == sorted(np_x)
    # The two formats' shards hold the videos in different orders: match them by id.
    tf_ids = [i.decode() for i in tf_x[F.ID]]
    assert sorted(tf_ids) == sorted(np_x[F.ID].tolist()) and len(set(tf_ids)) == len(tf_ids) == 40
    order = [tf_ids.index(i) for i in np_x[F.ID]]
    for key in tf_x:
        if key != F.ID:
            np.testing.assert_array_equal(tf_x[key][order], np_x[key], err_msg=key)
    np.testing.assert_array_equal(tf_y[order], np_y)
    assert np_y.sum() > 0 and np_x[I.STUDENT_MASK if mode != TEACHER else I.TEACHER_MASK].sum() > 0


def test_student_view_cut_from_the_full_view_equals_the_stored_view(tiny_frame_dataset):
    cut = I.plan_inputs(str(tiny_frame_dataset), PARALLEL, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)
    stored = I.plan_inputs(
        str(tiny_frame_dataset), STUDENT, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS
    )
    assert cut.student_from_full and not stored.student_from_full
    cut_x, _ = _collect(I.numpy_batches(cut, 16))
    stored_x, _ = _collect(I.numpy_batches(stored, 16))
    np.testing.assert_array_equal(cut_x[I.STUDENT_MASK], stored_x[I.STUDENT_MASK])
    np.testing.assert_array_equal(cut_x[I.STUDENT_FRAMES], stored_x[I.STUDENT_FRAMES])
    assert cut_x[I.TEACHER_FRAMES].shape[1:] == (300, 1152)
    assert cut_x[I.STUDENT_FRAMES].shape[1:] == (75, 1152)


def test_features_select_and_concatenate_rgb_then_audio(tiny_frame_dataset):
    both = I.plan_inputs(str(tiny_frame_dataset), STUDENT, View.parse("every_n:4"), ("rgb", "audio"), LABELS)
    audio = I.plan_inputs(str(tiny_frame_dataset), STUDENT, View.parse("every_n:4"), ("audio",), LABELS)
    x_both, _ = _collect(I.numpy_batches(both, 16))
    x_audio, _ = _collect(I.numpy_batches(audio, 16))
    np.testing.assert_array_equal(x_both[I.STUDENT_FRAMES][..., 1024:], x_audio[I.STUDENT_FRAMES])


def test_same_seed_and_epoch_give_the_same_order_and_skip_resumes_it(tiny_frame_dataset):
    plan = I.plan_inputs(str(tiny_frame_dataset), STUDENT, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)
    for reader in (I.tf_dataset, I.numpy_batches):
        kwargs = dict(shuffle=True, seed=3, shuffle_buffer=16, drop_remainder=True, with_ids=True)

        def ids(**more):
            return [np.asarray(x[F.ID]).tolist() for x, _ in reader(plan, 8, **kwargs, **more)]  # noqa: B023

        first, again, other, resumed = ids(epoch=0), ids(epoch=0), ids(epoch=1), ids(epoch=0, skip_batches=2)
        assert first == again and first != other
        assert resumed == first[2:]
        assert sorted(sum(first, [])) == sorted(set(sum(first, [])))  # no video twice in an epoch


def test_input_workers_give_the_same_batches_and_random_views_resume_exactly(tiny_frame_dataset):
    plan = I.plan_inputs(str(tiny_frame_dataset), PARALLEL, View.parse("random:5"), F.FRAME_FEATURES, LABELS)
    kwargs = dict(shuffle=True, seed=5, shuffle_buffer=16, drop_remainder=True, with_ids=True, epoch=1)

    def batches(**more):
        return [x for x, _ in I.numpy_batches(plan, 8, **kwargs, **more)]

    alone, threaded, resumed = batches(), batches(workers=3), batches(workers=2, skip_batches=2)
    assert len(alone) == len(threaded) == 5 and len(resumed) == 3
    for a, b in zip(alone, threaded, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # A random view is drawn per batch from (seed, epoch, batch index): the batches a
    # resumed run reads cut the same frames as the uninterrupted run's.
    for a, b in zip(alone[2:], resumed, strict=True):
        np.testing.assert_array_equal(a[I.STUDENT_FRAMES], b[I.STUDENT_FRAMES])


def test_a_consumer_that_stops_early_ends_the_input_threads(tiny_frame_dataset):
    import gc
    import threading

    plan = I.plan_inputs(str(tiny_frame_dataset), TEACHER, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)
    before = {t for t in threading.enumerate() if t.name.startswith("fewframes-input")}
    gc.disable()  # the threads must end on close, not whenever a collection finds a cycle
    try:
        batches = I.numpy_batches(plan, 4, workers=2)
        next(batches)
        batches.close()  # what fit does to an iterator it stops reading after steps_per_epoch
        for thread in threading.enumerate():
            if thread.name.startswith("fewframes-input") and thread not in before:
                thread.join(timeout=10)
                assert not thread.is_alive(), thread.name
    finally:
        gc.enable()


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_file_is_an_error_naming_it(tmp_path, tiny_frame_dataset, workers):
    import shutil

    copy = tmp_path / "dataset"
    shutil.copytree(tiny_frame_dataset, copy)
    for damaged in (copy / "parquet").iterdir():
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    plan = I.plan_inputs(str(copy), STUDENT, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)
    with pytest.raises(I.UnreadableInput, match=r"cannot read .*part-0000\d-of-00002\.parquet: .*magic"):
        list(I.numpy_batches(plan, 4, workers=workers))


def test_mismatches_are_refused_with_the_reason(tmp_path, tiny_frame_dataset):
    from tests.conftest import make_dataset

    compact = make_dataset(tmp_path, videos=6, frames=(3, 9), teacher_view=False)
    with pytest.raises(I.InputMismatch, match="no full view"):
        I.plan_inputs(str(compact), TEACHER, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)
    with pytest.raises(I.InputMismatch, match="stores view every_n:4 and no full view"):
        I.plan_inputs(str(compact), STUDENT, View.parse("every_n:10"), F.FRAME_FEATURES, LABELS)
    with pytest.raises(I.InputMismatch, match="has 8 classes; this run expects 20"):
        I.plan_inputs(
            str(compact),
            STUDENT,
            View.parse("every_n:4"),
            F.FRAME_FEATURES,
            LabelSpace.build(ENTITIES, 20, None),
        )
    with pytest.raises(ValueError, match="not a fewframes dataset"):
        I.plan_inputs(str(tmp_path), STUDENT, View.parse("every_n:4"), F.FRAME_FEATURES, LABELS)


def test_vertical_label_space_maps_entities_to_their_vertical(tmp_path, tiny_frame_dataset):
    import tensorflow as tf

    vocabulary = tmp_path / "vocabulary.csv"
    vocabulary.write_text(
        "Index,TrainVideoCount,KnowledgeGraphId,Name,WikiUrl,Vertical1,Vertical2,Vertical3,WikiDescription\n"
        + "".join(f"{i},1,/m/x{i},Class {i},,{'Games' if i % 2 else 'Sports'},,,d\n" for i in range(8))
    )
    space = LabelSpace.build(VERTICALS, 8, str(vocabulary))
    assert space.class_names == ("Games", "Sports")
    labels = [np.array([0, 2]), np.array([1]), np.array([], np.int64), np.array([0, 1])]
    expected = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], np.float32)
    np.testing.assert_array_equal(space.multi_hot(labels), expected)
    ragged = tf.ragged.constant([[0, 2], [1], [], [0, 1]], dtype=tf.int64)
    np.testing.assert_array_equal(space.multi_hot_tf(ragged).numpy(), expected)
    layout, _ = inputs.load_layout(str(tiny_frame_dataset))
    assert layout.teacher_view
