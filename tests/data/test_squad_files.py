"""Tests of SQuAD 2.0 file reading and writing."""

from __future__ import annotations

import json

import pytest

from secondorder.data.squad_files import read_squad_file, write_jsonl, write_squad_json

CTX1 = "Normans came from Normandy in France."
#       0         1         2         3
#       0123456789012345678901234567890123456
CTX2 = "Rollo was their first ruler."
CTX3 = "Paris is the capital."

OFFICIAL = {
    "version": "v2.0",
    "data": [
        {
            "title": "Normans",
            "paragraphs": [
                {
                    "context": CTX1,
                    "qas": [
                        {
                            "id": "n1",
                            "question": "Where did the Normans come from?",
                            "answers": [
                                {"text": "Normandy", "answer_start": 18},
                                {"text": "Normandy in France", "answer_start": 18},
                            ],
                            "is_impossible": False,
                        },
                        {
                            "id": "n2",
                            "question": "Where did the Vikings come from?",
                            "answers": [],
                            "plausible_answers": [{"text": "France", "answer_start": 30}],
                            "is_impossible": True,
                        },
                    ],
                },
                {
                    "context": CTX2,
                    "qas": [
                        {
                            "id": "n3",
                            "question": "Who was the first ruler?",
                            "answers": [{"text": "Rollo", "answer_start": 0}],
                            "is_impossible": False,
                        }
                    ],
                },
            ],
        },
        {
            "title": "Paris",
            "paragraphs": [
                {
                    "context": CTX3,
                    "qas": [
                        {
                            "id": "p1",
                            "question": "What is Paris?",
                            "answers": [{"text": "the capital", "answer_start": 9}],
                            "is_impossible": False,
                        }
                    ],
                }
            ],
        },
    ],
}

FLAT = [
    {
        "id": "n1",
        "title": "Normans",
        "context": CTX1,
        "question": "Where did the Normans come from?",
        "answers": {"text": ["Normandy", "Normandy in France"], "answer_start": [18, 18]},
    },
    {
        "id": "n2",
        "title": "Normans",
        "context": CTX1,
        "question": "Where did the Vikings come from?",
        "answers": {"text": [], "answer_start": []},
    },
    {
        "id": "n3",
        "title": "Normans",
        "context": CTX2,
        "question": "Who was the first ruler?",
        "answers": {"text": ["Rollo"], "answer_start": [0]},
    },
    {
        "id": "p1",
        "title": "Paris",
        "context": CTX3,
        "question": "What is Paris?",
        "answers": {"text": ["the capital"], "answer_start": [9]},
    },
]


def test_fixture_offsets_are_right():
    assert CTX1[18:26] == "Normandy" and CTX1[30:36] == "France"
    assert CTX3[9:20] == "the capital"


def test_official_nested_to_flat(tmp_path):
    path = tmp_path / "dev-v2.0.json"
    path.write_text(json.dumps(OFFICIAL, indent=1))
    assert read_squad_file(path) == FLAT


def test_write_official_groups_and_round_trips(tmp_path):
    path = write_squad_json(FLAT, tmp_path / "sub" / "out.json")
    assert read_squad_file(path) == FLAT
    nested = json.loads(path.read_text())
    assert nested["version"] == "v2.0"
    assert [a["title"] for a in nested["data"]] == ["Normans", "Paris"]
    assert [len(a["paragraphs"]) for a in nested["data"]] == [2, 1]
    assert [len(p["qas"]) for p in nested["data"][0]["paragraphs"]] == [2, 1]
    flags = [
        qa["is_impossible"] for a in nested["data"] for p in a["paragraphs"] for qa in p["qas"]
    ]
    assert flags == [False, True, False, False]


def test_impossible_question_ignores_any_answers(tmp_path):
    data = json.loads(json.dumps(OFFICIAL))
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["answers"] = [{"text": "France", "answer_start": 30}]  # present but is_impossible
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    assert read_squad_file(path)[1]["answers"] == {"text": [], "answer_start": []}


def test_jsonl_round_trip_detected_from_content(tmp_path):
    path = write_jsonl(FLAT, tmp_path / "train.jsonl")
    assert len(path.read_text().splitlines()) == 4
    assert read_squad_file(path) == FLAT
    # same content under a .json suffix is still read as JSON lines
    other = tmp_path / "train.json"
    other.write_text(path.read_text())
    assert read_squad_file(other) == FLAT
    # a single-record JSON-lines file
    single = tmp_path / "one.jsonl"
    single.write_text(json.dumps(FLAT[2]) + "\n")
    assert read_squad_file(single) == [FLAT[2]]


def test_json_list_format(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(json.dumps(FLAT, indent=2))
    assert read_squad_file(path) == FLAT


def test_misaligned_answer_start_names_file_and_id(tmp_path):
    data = json.loads(json.dumps(OFFICIAL))
    data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 8
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad\.json.*'p1'.*the capital.*answer_start=8"):
        read_squad_file(path)
    rows = [dict(r) for r in FLAT]
    rows[0] = {**rows[0], "answers": {"text": ["Normandy"], "answer_start": [99]}}
    with pytest.raises(ValueError, match="'n1'"):
        write_jsonl(rows, tmp_path / "x.jsonl")


def test_missing_file_message(tmp_path):
    missing = tmp_path / "nowhere" / "train-v2.0.json"
    with pytest.raises(
        FileNotFoundError, match=r"nowhere.*data\.train_file.*data\.validation_file"
    ):
        read_squad_file(missing)
    with pytest.raises(FileNotFoundError, match=r"config key data\.validation_file "):
        read_squad_file(missing, config_key="data.validation_file")


def test_malformed_json_names_file_and_line(tmp_path):
    lines = [json.dumps(r) for r in FLAT]
    lines[2] = lines[2][:-5]  # truncate the third record
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl.*line 3"):
        read_squad_file(path)
    nested = tmp_path / "broken.json"
    nested.write_text('{\n  "version": "v2.0",\n  "data": [\n    {"title": }\n  ]\n}\n')
    with pytest.raises(ValueError, match=r"broken\.json.*line 4"):
        read_squad_file(nested)


def test_other_validation_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    no_question = {k: v for k, v in FLAT[0].items() if k != "question"}
    path.write_text(json.dumps(no_question) + "\n")
    with pytest.raises(ValueError, match=r"'n1'.*missing.*question"):
        read_squad_file(path)
    path.write_text(json.dumps(FLAT[0]) + "\n" + json.dumps(FLAT[0]) + "\n")
    with pytest.raises(ValueError, match="duplicate.*'n1'"):
        read_squad_file(path)
    data = json.loads(json.dumps(OFFICIAL))
    data["data"][0]["paragraphs"][1]["qas"][0]["answers"] = []
    path = tmp_path / "o.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"'n3'.*is_impossible is false"):
        read_squad_file(path)
