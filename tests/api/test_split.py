"""The seed's split rule, as the dataset runner applies it (exact fractions, per label)."""

from __future__ import annotations

import random

import pytest

from elasticthought.documents.split import assign_by_label, share, split_items
from tests.api.helpers import expected_split


@pytest.mark.parametrize("tenths", range(1, 10))
def test_split_counts_match_integer_rule(tenths):
    rng = random.Random(tenths)
    labels = [rng.choice("abc") for _ in range(257)]
    flags = assign_by_label(labels, share(tenths / 10))
    got_train: dict[str, int] = {}
    got_test: dict[str, int] = {}
    for label, to_train in zip(labels, flags, strict=True):
        target = got_train if to_train else got_test
        target[label] = target.get(label, 0) + 1
    assert (got_train, got_test) == expected_split(labels, tenths)


def test_ties_go_to_training_exactly():
    # 0.7 as a float is not 7/10: with exact fractions 10 items split 7/3, and 5 split 3/2.
    train, test = split_items(range(10), share(0.7))
    assert (len(train), len(test)) == (7, 3)
    assert split_items(list("abcde"), share(0.7)) == (["a", "c", "d"], ["b", "e"])
