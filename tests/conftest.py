"""Shared fixtures: a small synthetic SQuAD 2.0 set and its locally trained tokenizer."""

from __future__ import annotations

import os

import pytest
import torch

# The suite never talks to the Hub or W&B servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# Small models: one thread is as fast and does not fight other jobs for the two cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _single_blas_thread():
    """NumPy's BLAS pool on one thread too: the Lanczos recurrences make many small BLAS calls,
    and on a 2-core machine shared with other jobs several threads per call wait for a busy core
    (about 100x slower than one thread)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def small_records():
    import datasets

    from secondorder.data.synthetic import generate_squad_v2

    return {
        split: datasets.Dataset.from_list(generate_squad_v2(n, seed=3, split=split))
        for split, n in (("train", 400), ("validation", 120))
    }


@pytest.fixture(scope="session")
def small_tokenizer(small_records, tmp_path_factory):
    from secondorder.data.squad import corpus_texts
    from secondorder.data.tokenizer import local_tokenizer

    cache = tmp_path_factory.mktemp("tokenizers")
    return local_tokenizer(corpus_texts(small_records["train"]), vocab_size=800, cache_dir=cache)
