"""How a value is checked, once for the whole package: a check is a pair (predicate, what is
allowed, in words). The optimizers' hyperparameters (each optimizer's `HYPERPARAMETERS`, also
read by `secondorder.optim.registry`) and the training config (`secondorder.train.checks`)
are checked with these, so a bad value ends in one line that names the key and what it may be."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["BETAS", "BOOL", "Check", "FRACTION", "NONNEG", "POSITIVE", "POSITIVE_INT",
           "POSITIVE_INT_OR_NULL", "UNIT", "check_values", "is_int", "is_number", "one_of"]

Check = tuple[Callable[[Any], bool], str]


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def one_of(options: Sequence[Any]) -> Check:
    return (lambda x: x in options, " | ".join(str(o) for o in options))


NONNEG: Check = (lambda x: is_number(x) and x >= 0, "a number >= 0")
POSITIVE: Check = (lambda x: is_number(x) and x > 0, "a number > 0")
UNIT: Check = (lambda x: is_number(x) and 0 <= x < 1, "a number in [0, 1)")
FRACTION: Check = (lambda x: is_number(x) and 0 < x <= 1, "a number in (0, 1]")
POSITIVE_INT: Check = (lambda x: is_int(x) and x >= 1, "an integer >= 1")
POSITIVE_INT_OR_NULL: Check = (lambda x: x is None or (is_int(x) and x >= 1),
                               "an integer >= 1, or null")
BOOL: Check = (lambda x: isinstance(x, bool), "true or false")
BETAS: Check = (lambda x: isinstance(x, list | tuple) and len(x) == 2
                and all(is_number(b) and 0 <= b < 1 for b in x),
                "two numbers [beta1, beta2], each in [0, 1)")


def check_values(checks: Mapping[str, Check], values: Mapping[str, Any], owner: str) -> None:
    """ValueError ``"<owner>: <key>=<value> is invalid; allowed: ..."`` for the first key of
    `checks` whose value in `values` fails its check (keys absent from `values` are skipped)."""
    for key, (ok, allowed) in checks.items():
        if key in values and not ok(values[key]):
            raise ValueError(f"{owner}: {key}={values[key]!r} is invalid; allowed: {allowed}")
