"""The seed's deterministic split rule of a dataset (shared by the API's checks and the runner).

Within one label, items are taken in order; an item goes to training when
`train_count * test_share <= test_count * train_share`, else to testing. Shares are exact
fractions of the decimal given (0.7 is 7/10), so ties are not at the mercy of float rounding.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")


def share(value: float | int | str) -> Fraction:
    """The exact fraction a decimal number spells (0.7 -> 7/10)."""
    return Fraction(str(value))


def split_items(items: Iterable[T], train_share: Fraction) -> tuple[list[T], list[T]]:
    """Split one label's items (in order) into (training, testing)."""
    test_share = 1 - train_share
    train: list[T] = []
    test: list[T] = []
    for item in items:
        if len(train) * test_share <= len(test) * train_share:
            train.append(item)
        else:
            test.append(item)
    return train, test


def assign_by_label(labels: Iterable[Hashable], train_share: Fraction) -> list[bool]:
    """For a sequence of item labels (in order), whether each item goes to training; the rule
    is applied within each label separately."""
    test_share = 1 - train_share
    counts: dict[Hashable, list[int]] = {}
    out = []
    for label in labels:
        c = counts.setdefault(label, [0, 0])
        to_train = c[0] * test_share <= c[1] * train_share
        c[0 if to_train else 1] += 1
        out.append(to_train)
    return out
