"""Inception Score on hand-made class probabilities (exp of the mean KL to the marginal, 10 splits)."""
from __future__ import annotations

import numpy as np
import pytest

from posetransfer.errors import DataError
from posetransfer.metrics.inception_score import inception_score, softmax


def one_hot(classes: list[int], n_classes: int = 1008) -> np.ndarray:
    p = np.full((len(classes), n_classes), 1e-12)
    p[np.arange(len(classes)), classes] = 1.0
    return p / p.sum(axis=1, keepdims=True)


def test_confident_and_diverse_predictions_score_the_number_of_classes():
    # each split holds 10 images predicted confidently as 10 different classes → IS = 10 per split
    probs = one_hot(list(range(10)) * 10)
    mean, std, splits = inception_score(probs, splits=10)
    assert splits == 10
    assert mean == pytest.approx(10.0, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


def test_identical_predictions_score_one_and_uniform_predictions_score_one():
    assert inception_score(one_hot([3] * 40))[0] == pytest.approx(1.0, rel=1e-6)
    assert inception_score(np.full((40, 1008), 1 / 1008))[0] == pytest.approx(1.0)


def test_splits_are_consecutive_chunks():
    # first half: 5 classes (IS 5), second half: 1 class (IS 1) → with 2 splits the mean is 3, std 2
    probs = np.concatenate([one_hot([0, 1, 2, 3, 4] * 2), one_hot([7] * 10)])
    mean, std, _ = inception_score(probs, splits=2)
    assert mean == pytest.approx(3.0, rel=1e-6)
    assert std == pytest.approx(2.0, rel=1e-6)
    assert inception_score(probs[:3], splits=10)[2] == 3  # never more splits than images


def test_softmax_rows_sum_to_one_even_for_large_logits():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)


def test_empty_input_is_a_clear_error():
    with pytest.raises(DataError, match="at least one image"):
        inception_score(np.zeros((0, 1008)))
