"""Small random batches of videos for the model tests, and model outputs as numpy."""

import keras
import numpy as np

D = 12  # the frame width of the batches `inputs` makes by default


def inputs(lengths=(6, 3, 1), num_frames=6, dim=D, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype("float32")
    frames = rng.normal(size=(len(lengths), num_frames, dim)).astype("float32") * mask[..., None]
    return {"frames": frames, "mask": mask}


def numpy_outputs(outputs):
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
