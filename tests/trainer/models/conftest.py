import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    """Every model test starts from the same Keras weights and dropout draws."""
    keras.utils.set_random_seed(0)
