"""The tokenizer cache is shared by the jobs of a multirun: concurrent first uses must all load.

CI once failed here: two submitit jobs trained the same tokenizer at once, wrote into one fixed
`<key>.tmp` directory, and one of them read a half-written tokenizer.json.
"""

import multiprocessing as mp
from pathlib import Path

import pytest

from secondorder.data import tokenizer as tok_module

TEXTS = [f"the river {w} flows past the {v} mill" for w in "abcdefgh" for v in "ijklmnop"]


def _load(cache: str, queue) -> None:
    try:
        tok = tok_module.local_tokenizer(TEXTS, vocab_size=120, cache_dir=cache)
        queue.put(tok("the river a flows")["input_ids"])
    except Exception as err:  # reported to the parent, which fails the test
        queue.put(f"{type(err).__name__}: {err}")


@pytest.mark.slow  # several processes racing for the cache
def test_concurrent_first_uses_all_load_the_same_tokenizer(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(r, list) for r in results), results
    assert all(r == results[0] for r in results)
    # exactly one cache entry, no temporary directories left behind
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.iterdir()).name]
    assert not next(tmp_path.iterdir()).name.startswith(".")


def test_a_job_that_finishes_while_another_trains_leaves_one_complete_entry(tmp_path, monkeypatch):
    """Deterministic version of the race: job B completes while job A is still training."""
    real_train = tok_module.train_wordpiece
    calls = []

    def train_while_another_job_finishes(texts, vocab_size):
        calls.append(1)
        if len(calls) == 1:  # job A is training; job B runs start to finish meanwhile
            tok_module.local_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path)
        return real_train(texts, vocab_size)

    monkeypatch.setattr(tok_module, "train_wordpiece", train_while_another_job_finishes)
    tok = tok_module.local_tokenizer(TEXTS, vocab_size=120, cache_dir=tmp_path)
    entries = sorted(p.name for p in Path(tmp_path).iterdir())
    assert len(entries) == 1 and not entries[0].startswith("."), entries
    assert (tmp_path / entries[0] / "tokenizer.json").exists()
    assert tok.convert_ids_to_tokens(tok("river mill")["input_ids"])[1:3] == ["river", "mill"]
