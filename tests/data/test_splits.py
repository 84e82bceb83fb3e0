"""The held-out split takes whole paragraphs out of training (no context is in both)."""

from __future__ import annotations

import datasets
import pytest

from secondorder.data.splits import hold_out


def test_whole_contexts_are_held_out(small_records):
    train = small_records["train"]
    rest, held = hold_out(train, 50, seed=1)
    assert len(held) >= 50 and len(rest) + len(held) == len(train)
    assert not set(rest["context"]) & set(held["context"])
    assert sorted([*rest["id"], *held["id"]]) == sorted(train["id"])
    again = hold_out(train, 50, seed=1)[1]
    assert list(again["id"]) == list(held["id"])
    assert list(hold_out(train, 50, seed=2)[1]["id"]) != list(held["id"])


def test_too_many_is_an_error():
    tiny = datasets.Dataset.from_list([{"context": "c", "id": str(i)} for i in range(3)])
    with pytest.raises(ValueError, match="heldout_questions=3 leaves no training data"):
        hold_out(tiny, 3)
