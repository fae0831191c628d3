"""bench/learner_ideas.py --references: the reference points that say where a better review order,
and where a better learner, would save actions (issue 16)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.learn import LiveLearner


@pytest.fixture(scope="module")
def ideas():
    path = Path(__file__).resolve().parents[1] / "bench" / "learner_ideas.py"
    spec = importlib.util.spec_from_file_location("learner_ideas", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["learner_ideas"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.BATCH = 10
    return module


@pytest.fixture(scope="module")
def arrays(ideas):
    """300 items of 4 classes: features that mostly separate them (a quarter sit halfway to
    another class), zero-shot right about half of the time."""
    rng = np.random.default_rng(3)
    truth = np.repeat(np.arange(4), 75)
    centres = rng.normal(size=(4, 32)) * 2.0
    other = (truth + rng.integers(1, 4, size=len(truth))) % 4
    halfway = rng.random(len(truth)) < 0.25
    features = centres[truth] + rng.normal(size=(len(truth), 32))
    features[halfway] = (0.5 * centres[truth] + 0.5 * centres[other] + rng.normal(size=(len(truth), 32)))[halfway]
    guessed = np.where(rng.random(len(truth)) < 0.5, truth, rng.integers(0, 4, size=len(truth)))
    zero_shot = rng.uniform(0.05, 0.2, size=(len(truth), 4)) + rng.uniform(0.1, 0.6, size=(len(truth), 1)) * np.eye(4)[guessed]
    ids = np.arange(1, len(truth) + 1, dtype=np.int64)
    return ideas.Arrays(ids, features.astype(np.float32), zero_shot / zero_shot.sum(1, keepdims=True), truth,
                        np.array([f"{t}/{i}.png" for t, i in zip(truth, ids)]))


def needed(curve, target):
    return next(share for share, accuracy in curve if accuracy >= target)


def test_a_perfect_order_is_told_which_suggestions_are_wrong(ideas, arrays):
    """The replay hands the perfect order the open items' true mistakes, and it reviews them."""

    class Recording(ideas.WrongFirst):
        def __init__(self):
            self.told, self.chosen = [], []

        def __call__(self, p, features, wrong):
            order = super().__call__(p, features, wrong)
            self.told.append(wrong.copy())
            self.chosen.append(order[: ideas.BATCH])
            return order

    order = Recording()
    curve, _ = ideas.simulate(arrays, LiveLearner, order)
    product, _ = ideas.simulate(arrays, LiveLearner, ideas.product_order)
    assert order.told[0].tolist() == (arrays.zero_shot.argmax(1) != arrays.truth).tolist()  # before any decision
    assert order.told[0][order.chosen[0]].all()  # the first batch: corrections only
    assert curve[0] == product[0] and curve[-1][1] >= 0.999
    assert needed(curve, 0.95) < 1.0


def test_wrong_first_puts_every_wrong_suggestion_before_any_right_one(ideas):
    p = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.51, 0.49]])
    wrong = np.array([True, False, True, False])
    assert ideas.WrongFirst()(p, np.zeros((4, 2)), wrong).tolist() == [2, 0, 3, 1]  # margin order within each


def test_the_classifier_that_saw_most_labels_reviews_its_least_certain_first(ideas, arrays):
    curve = ideas.cross_validated_curve(arrays)
    assert curve[0][0] == 0 and 0.6 < curve[0][1] < 1.0  # its own cross-validated accuracy, not zero-shot's
    assert curve[-1][1] == 1.0 and all(b[1] >= a[1] for a, b in zip(curve, curve[1:]))
    errors = 1 - curve[0][1]
    in_random_order = 1 - 0.05 / errors  # the share a random review order needs for 95%, on average
    assert needed(curve, 0.95) < in_random_order  # its smallest margins hold more than their share of its errors


def test_learners_on_the_same_items_are_judged_on_the_open_items(ideas, arrays):
    rows = ideas.learners_on_the_same_items(arrays, stages=(1, 3))
    assert [row["reviewed"] for row in rows] == [10, 30]
    for row in rows:
        assert {"blend", "logistic_regression", "rbf_svm"} <= set(row)
        assert all(0.0 <= row[key] <= 1.0 for key in ("blend", "logistic_regression", "rbf_svm"))
    assert rows[1]["blend"] > rows[0]["blend"]  # more reviews, more of the open items right
