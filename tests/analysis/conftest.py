"""Analysis tests run single-threaded (torch intra-op threads and numpy's BLAS pool).

The Lanczos recurrences make many small BLAS calls; on a 2-core machine shared with other jobs,
several threads per call make each of them wait for a busy core (~100x slower than one thread).
"""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)
