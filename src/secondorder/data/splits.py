"""A validation split held out of the training split, for tuning without looking at the dev set.

Whole paragraphs are held out (every question of a held-out context goes with it), so no
held-out question's context was seen in training.
"""

from __future__ import annotations

import numpy as np


def hold_out(train, num_questions: int, seed: int = 0):
    """`(rest, held_out)` of a records `Dataset`: seeded whole contexts, at least
    `num_questions` questions held out (fewer contexts than that: ValueError)."""
    contexts = list(dict.fromkeys(train["context"]))
    order = np.random.default_rng(seed).permutation(len(contexts))
    by_context: dict[str, list[int]] = {}
    for i, c in enumerate(train["context"]):
        by_context.setdefault(c, []).append(i)
    held: list[int] = []
    for k in order:
        if len(held) >= num_questions:
            break
        held.extend(by_context[contexts[k]])
    if len(held) < num_questions or len(held) == len(train):
        raise ValueError(
            f"data.heldout_questions={num_questions} leaves no training data (the training split "
            f"has {len(train)} questions); lower it")
    keep = sorted(set(range(len(train))) - set(held))
    return train.select(keep), train.select(sorted(held))
