"""Reading and writing SQuAD 2.0 data files.

Every reader returns the flat record schema used throughout the project (the same layout as
the Hugging Face ``squad_v2`` dataset)::

    {"id": str, "title": str, "context": str, "question": str,
     "answers": {"text": [str, ...], "answer_start": [int, ...]}}

An unanswerable question has ``answers == {"text": [], "answer_start": []}``.

Three on-disk layouts are understood, detected from the content rather than the file suffix:

* the official nested SQuAD JSON (``train-v2.0.json``, ``dev-v2.0.json``):
  ``{"version", "data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``;
* JSON lines, one flat record per line;
* a JSON list of flat records.

Records are validated strictly: a missing field, a wrong type, a duplicate id or an answer that
is not the exact substring of the context at ``answer_start`` raises ``ValueError`` naming the
file and the question id. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_FIELDS",
    "read_squad_file",
    "validate_record",
    "write_jsonl",
    "write_squad_json",
]

RECORD_FIELDS = ("id", "title", "context", "question", "answers")

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _where(source: str, qid: Any) -> str:
    return f"{source}: question id {qid!r}"


def validate_record(record: Mapping[str, Any], source: str = "<records>") -> dict[str, Any]:
    """Check one flat record and return a clean copy holding exactly the schema fields.

    ``source`` (usually the file name) is only used in error messages. Raises ``ValueError`` for
    a missing field, a wrong type, mismatched answer lists, or an answer that does not occur in
    the context at its ``answer_start``.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"{source}: expected a record (JSON object), got {type(record).__name__}")
    qid = record.get("id", "<no id>")
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{_where(source, qid)} is missing field(s) {missing}")
    for key in ("id", "title", "context", "question"):
        if not isinstance(record[key], str):
            raise ValueError(
                f"{_where(source, qid)}: field {key!r} must be a string, "
                f"got {type(record[key]).__name__}"
            )
    answers = record["answers"]
    if not isinstance(answers, Mapping) or "text" not in answers or "answer_start" not in answers:
        raise ValueError(
            f"{_where(source, qid)}: 'answers' must be an object with lists 'text' and "
            f"'answer_start', got {answers!r}"
        )
    if not isinstance(answers["text"], list | tuple) or not isinstance(
        answers["answer_start"], list | tuple
    ):
        raise ValueError(
            f"{_where(source, qid)}: answers['text'] and answers['answer_start'] must be lists"
        )
    texts = list(answers["text"])
    starts = list(answers["answer_start"])
    if len(texts) != len(starts):
        raise ValueError(
            f"{_where(source, qid)}: {len(texts)} answer texts but {len(starts)} answer_start "
            "values"
        )
    context = record["context"]
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str):
            raise ValueError(f"{_where(source, qid)}: answer text {text!r} is not a string")
        if isinstance(start, bool) or not isinstance(start, int):
            raise ValueError(
                f"{_where(source, qid)}: answer_start {start!r} for answer {text!r} is not an "
                "integer"
            )
        if text == "":
            raise ValueError(f"{_where(source, qid)}: empty answer text at answer_start {start}")
        found = context[start : start + len(text)] if 0 <= start <= len(context) else None
        if found != text:
            raise ValueError(
                f"{_where(source, qid)}: answer {text!r} is not in the context at "
                f"answer_start={start} (context there reads {found!r}; context length "
                f"{len(context)})"
            )
    return {
        "id": record["id"],
        "title": record["title"],
        "context": context,
        "question": record["question"],
        "answers": {"text": texts, "answer_start": starts},
    }


def _validate_all(records: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in records:
        clean = validate_record(record, source)
        if clean["id"] in seen:
            raise ValueError(f"{source}: duplicate question id {clean['id']!r}")
        seen.add(clean["id"])
        out.append(clean)
    return out


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _flatten_official(obj: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    data = obj["data"]
    if not isinstance(data, list):
        raise ValueError(f"{source}: 'data' must be a list of articles")
    records: list[dict[str, Any]] = []
    for a_idx, article in enumerate(data):
        if not isinstance(article, Mapping) or "paragraphs" not in article:
            raise ValueError(f"{source}: article #{a_idx} has no 'paragraphs'")
        title = article.get("title", "")
        for p_idx, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, Mapping) or "context" not in paragraph:
                raise ValueError(
                    f"{source}: article #{a_idx} ({title!r}) paragraph #{p_idx} has no 'context'"
                )
            if "qas" not in paragraph:
                raise ValueError(
                    f"{source}: article #{a_idx} ({title!r}) paragraph #{p_idx} has no 'qas'"
                )
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                qid = qa.get("id", "<no id>") if isinstance(qa, Mapping) else "<not an object>"
                if not isinstance(qa, Mapping) or "id" not in qa or "question" not in qa:
                    raise ValueError(f"{_where(source, qid)}: needs 'id' and 'question'")
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise ValueError(
                        f"{_where(source, qid)}: is_impossible must be true/false, got "
                        f"{impossible!r}"
                    )
                raw_answers = [] if impossible else qa.get("answers")
                if not isinstance(raw_answers, list):
                    raise ValueError(f"{_where(source, qid)}: 'answers' must be a list")
                if not impossible and not raw_answers:
                    raise ValueError(
                        f"{_where(source, qid)}: is_impossible is false but 'answers' is empty"
                    )
                texts, starts = [], []
                for ans in raw_answers:
                    if (
                        not isinstance(ans, Mapping)
                        or "text" not in ans
                        or "answer_start" not in ans
                    ):
                        raise ValueError(
                            f"{_where(source, qid)}: each answer needs 'text' and 'answer_start', "
                            f"got {ans!r}"
                        )
                    texts.append(ans["text"])
                    starts.append(ans["answer_start"])
                records.append(
                    {
                        "id": qa["id"],
                        "title": title,
                        "context": context,
                        "question": qa["question"],
                        "answers": {"text": texts, "answer_start": starts},
                    }
                )
    return records


def _parse_jsonl(text: str, source: str) -> list[Any]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{source}: malformed JSON on line {lineno}, column {err.colno}: {err.msg}"
            ) from err
    return rows


def _first_line_is_object(text: str) -> bool:
    for line in text.splitlines():
        if line.strip():
            try:
                return isinstance(json.loads(line), dict)
            except json.JSONDecodeError:
                return False
    return False


def _parse_content(text: str, source: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if not stripped:
        raise ValueError(f"{source}: file is empty")
    if stripped[0] not in "[{":
        raise ValueError(
            f"{source}: not JSON (expected the official SQuAD JSON, JSON lines or a JSON list; "
            f"file starts with {stripped[:20]!r})"
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        # Several objects, one per line -> JSON lines. A file whose first line is a complete
        # object is treated as JSON lines too, so that errors point at the offending line.
        if stripped[0] == "{" and (err.msg.startswith("Extra data") or _first_line_is_object(text)):
            rows = _parse_jsonl(text, source)
        else:
            raise ValueError(
                f"{source}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            ) from err
    else:
        if isinstance(obj, list):
            rows = obj
        elif isinstance(obj, dict) and "data" in obj and "id" not in obj:
            return _flatten_official(obj, source)
        elif isinstance(obj, dict):
            rows = [obj]  # JSON lines with a single record
        else:
            raise ValueError(f"{source}: top-level JSON value is a {type(obj).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{source}: entry #{i} is a {type(row).__name__}, not a record")
    return rows


def read_squad_file(path: PathLike, config_key: str | None = None) -> list[dict[str, Any]]:
    """Read a SQuAD 2.0 file in any supported layout and return validated flat records.

    ``config_key`` (e.g. ``"data.train_file"``) only makes the missing-file message more precise.
    Unanswerable questions (``is_impossible: true``) get empty answers; ``plausible_answers`` is
    ignored.
    """
    path = Path(path)
    if not path.is_file():
        keys = config_key or "data.train_file / data.validation_file"
        what = "is a directory, not a file" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"SQuAD data file {str(path)!r} {what}. Point the config key {keys} at the "
            "SQuAD 2.0 JSON file (e.g. train-v2.0.json / dev-v2.0.json) or a JSON-lines file."
        )
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not valid UTF-8 ({err})") from err
    return _validate_all(_parse_content(text, source), source)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _to_official(records: list[dict[str, Any]], version: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for rec in records:
        if not data or data[-1]["title"] != rec["title"]:
            data.append({"title": rec["title"], "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != rec["context"]:
            paragraphs.append({"context": rec["context"], "qas": []})
        answers = [
            {"text": t, "answer_start": s}
            for t, s in zip(rec["answers"]["text"], rec["answers"]["answer_start"], strict=True)
        ]
        paragraphs[-1]["qas"].append(
            {
                "id": rec["id"],
                "question": rec["question"],
                "answers": answers,
                "is_impossible": not answers,
            }
        )
    return {"version": version, "data": data}


def write_squad_json(
    records: Iterable[Mapping[str, Any]], path: PathLike, version: str = "v2.0"
) -> Path:
    """Write flat records as an official nested SQuAD JSON file and return its path.

    Consecutive records with the same title form one article; consecutive records of an article
    with the same context form one paragraph, so ``read_squad_file`` gives the records back in
    the same order. ``is_impossible`` is true exactly when a record has no answers.
    """
    path = Path(path)
    clean = _validate_all(records, f"write_squad_json({str(path)!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(_to_official(clean, version), fh, ensure_ascii=False)
    return path


def write_jsonl(records: Iterable[Mapping[str, Any]], path: PathLike) -> Path:
    """Write flat records as JSON lines (one record per line) and return the path."""
    path = Path(path)
    clean = _validate_all(records, f"write_jsonl({str(path)!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in clean:
            fh.write(json.dumps(rec, ensure_ascii=False))
            fh.write("\n")
    return path
