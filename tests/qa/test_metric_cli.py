"""The scorer's command line ends every bad input in one readable line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RECORDS = [
    {"id": "q1", "title": "t", "context": "Ana was born in Ostford.", "question": "Where?",
     "answers": {"text": ["Ostford"], "answer_start": [16]}},
    {"id": "q2", "title": "t", "context": "Ana was born in Ostford.", "question": "When?",
     "answers": {"text": [], "answer_start": []}},
]


def score(tmp_path: Path, preds, na_probs=None, raw_preds: str | None = None, data=None):
    data_file = tmp_path / "data.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in (data or RECORDS)))
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(raw_preds if raw_preds is not None else json.dumps(preds))
    cmd = [sys.executable, "-m", "secondorder.qa.metric", str(data_file), str(pred_file)]
    if na_probs is not None:
        (tmp_path / "na.json").write_text(json.dumps(na_probs))
        cmd += ["--na-prob-file", str(tmp_path / "na.json")]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_good_input_scores(tmp_path):
    out = score(tmp_path, {"q1": "Ostford", "q2": ""}, {"q1": 0.1, "q2": 0.9})
    assert out.returncode == 0 and json.loads(out.stdout)["exact"] == 100.0


@pytest.mark.parametrize(("preds", "na", "raw", "needle"), [
    (None, None, '{"q1": "Ostford", ', "malformed JSON at line 1"),
    (["Ostford", ""], None, None, "must be a JSON object"),
    ({"q1": "Ostford"}, None, None, "1 of 2 questions have no prediction; first ids: ['q2']"),
    ({"q1": "Ostford", "q2": "", "q9": "x"}, None, None, "not in the data; first ids: ['q9']"),
    ({"q1": 3, "q2": ""}, None, None, "prediction for 'q1' is not a string: 3"),
    ({"q1": "Ostford", "q2": ""}, {"q1": "high", "q2": 0.5}, None,
     "no-answer probability for 'q1' is not a number: 'high'"),
    ({"q1": "Ostford", "q2": ""}, {"q1": 0.1}, None, "have no no-answer probability"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, preds, na, raw, needle):
    out = score(tmp_path, preds, na, raw)
    assert out.returncode == 2 and out.stdout == ""
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out.stderr
    assert "Traceback" not in out.stderr


def test_missing_prediction_is_reported_as_the_official_script_does(tmp_path):
    out = score(tmp_path, {"q1": "Ostford"})
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == "Missing prediction for q2"


def test_missing_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "secondorder.qa.metric", str(tmp_path / "no.json"),
                          str(tmp_path / "p.json")], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "no.json" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
