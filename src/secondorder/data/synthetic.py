"""Embedded, deterministic SQuAD-2.0-style data set for offline runs.

:func:`generate_squad_v2` writes paragraphs in a small invented world (people, towns,
organisations, rivers, languages with syllable-built names) and asks extractive questions
about them, in exactly the Hugging Face ``squad_v2`` record schema.

Design
------
* 12 relation types (``born_in``, ``birth_year``, ``plays``, ``favourite_colour``,
  ``works_at``, ``studied``, ``speaks``, ``founded``, ``located_in``, ``population``,
  ``river``, ``mayor``), each with 3 statement templates and 1-3 question patterns
  (which slot is named in the question, which slot is the answer), each with 2-3
  paraphrased question templates.  ``founded`` has three slots (founder, organisation,
  year), so one fact can be asked about in several directions.
* A paragraph states ``facts_per_paragraph`` facts.  The facts are split into groups of
  2-3 facts of the *same* relation about *different* subjects (e.g. two birthplaces), so the
  answer to "Where was X born?" always has a same-type distractor ("Z was born in Q.").
  With ``same_relation_share < 1`` a group is such a pair/triple only with that probability
  and a single fact otherwise; its answer is then told apart from values of the same type
  (a birthplace from a mayor's town) by the relation the question asks about.
  Entities are re-used across relations within a paragraph (the person who was born in a
  town may also found an organisation), and facts, "mention-only" sentences and neutral
  filler sentences are shuffled after an intro sentence, so answers sit anywhere.
* Unanswerable questions are adversarial, SQuAD-2.0 style, and always use a relation that
  *is* stated in the paragraph (so a plausible answer of the right type is present):

  - ``"unanswerable-mentioned"``: the named entity appears in the paragraph but that
    relation is not stated for it (preferred when possible, ~70%);
  - ``"unanswerable-absent"``: the named entity does not appear in the paragraph at all.

  The number of unanswerable questions is exactly ``round(unanswerable_fraction *
  num_questions)`` (Python ``round``); which indices they are is drawn from the RNG.
* Every question names exactly one entity (person, town, organisation or river); for an
  answerable question exactly one fact of the asked relation matches it.  Answers are the
  1-3 word value span of that fact; ``answer_start`` points at that fact's occurrence even
  if the same text appears elsewhere in the context.

Harder settings
---------------
On the default construction a pretrained reader (MiniLM-L6) reaches F1 ~97 after one epoch: every
question copies its answer sentence's words and names the entity that sentence names. Six
knobs, all off by default (the output is then the original generator's, record for record) and
set in ``configs/data/synthetic.yaml``, make it SQuAD-2.0-hard; their templates live in
:mod:`secondorder.data.synthetic_templates`:

* ``paraphrase_share``: questions from synonym templates ("What is the hometown of X?" for
  "X was born in T.") that share no relation word with the statements;
* ``overlap_distractors``: per fact and question pattern, a sentence naming the same entity
  with the relation's words but a different fact ("X's sister was born in U.");
* ``two_sentence_share``: facts stated over two sentences, a lead naming the entity and the
  statement with a pronoun ("X grew up in a large family. She was born in T."), so the answer's
  sentence does not name the question's entity (She/He from the first name's ending, It for
  towns, organisations and rivers);
* ``near_miss_share``: per relation of a paragraph, a near-miss sentence for an entity that
  lacks the fact (negated, planned or wrongly claimed: "X planned to study law but never
  did."), and unanswerable questions ask about such entities first (kind
  ``"unanswerable-nearmiss"``);
* ``bridge_share``: bridge questions that name an entity through another fact ("Which river
  flows through the birthplace of X?"): the answer's sentence names the birthplace, not X;
* ``min_context_words``: padding beyond 40 words with background facts about fresh entities
  (askable like the others) and more fillers, so contexts span several feature windows.

Values that distractor and near-miss sentences introduce as wrong answers (U above) are never
named in a question ("Who was born in U?" would be answered by "X's sister").

Determinism: all randomness comes from one local :class:`random.Random` seeded with a string
built from ``split`` and ``seed`` (string seeding is stable across processes and Python hash
seeds); sets are only used for membership tests, never iterated.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from secondorder.data import synthetic_templates as _tables

__all__ = ["generate_squad_v2"]

# --------------------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------------------

_SYLLABLES = (
    "ba", "bel", "bri", "ca", "cor", "da", "dor", "dra", "el", "fen",
    "ga", "gor", "ha", "hal", "ka", "kel", "la", "lor", "ma", "mir",
    "na", "nor", "pa", "per", "ra", "ril", "sa", "sel", "ta", "tor",
    "va", "ven", "wyn", "ya", "zor", "qua", "thi", "mu", "ost", "vi",
)  # fmt: skip

# Suffixes differ per kind of name, so that (like real names) the form hints at the type.
_FIRST_ENDINGS = ("a", "o", "in", "ia", "an", "e")
_LAST_ENDINGS = ("ek", "ov", "ard", "is", "enko", "sson")
_CITY_ENDINGS = ("ath", "holm", "gard", "ford", "mere", "wick")
_RIVER_ENDINGS = ("a", "une", "ey", "os")
_ORG_NAME_ENDINGS = ("an", "ic", "ine", "ar")
_ORG_KINDS = (
    "Institute", "Academy", "Society", "Company", "Guild", "Museum",
    "Library", "Observatory", "Foundation", "Conservatory", "Bank", "Theatre",
)  # fmt: skip
_LANGUAGE_ENDINGS = ("ian", "ish", "ese", "ic")

_INSTRUMENTS = (
    "violin", "cello", "harp", "flute", "oboe", "lute", "trumpet", "piano",
    "clarinet", "bassoon", "viola", "horn", "guitar", "organ",
)  # fmt: skip
_COLOURS = (
    "red", "blue", "green", "yellow", "orange", "purple", "grey", "white",
    "black", "brown", "pink", "crimson", "amber", "teal", "silver", "violet",
)  # fmt: skip
_FIELDS = (
    "astronomy", "botany", "chemistry", "geology", "history", "law", "mathematics",
    "medicine", "music", "philosophy", "physics", "architecture", "economics", "linguistics",
)  # fmt: skip

#: Types whose values are invented names; only these are ever named in a question.
_NAME_TYPES = ("person", "city", "org", "river", "language")
_ENTITY_TYPES = ("person", "city", "org", "river")

# --------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------

_SLOT_RE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class _Template:
    text: str
    parts: tuple[str, ...]  # even indices: literal text; odd indices: slot names

    @staticmethod
    def parse(text: str) -> _Template:
        return _Template(text, tuple(_SLOT_RE.split(text)))

    @property
    def slots(self) -> tuple[str, ...]:
        return self.parts[1::2]


@dataclass(frozen=True)
class _Pattern:
    given: str  # slot named in the question
    answer: str  # slot whose value is the answer span
    templates: tuple[_Template, ...]


@dataclass(frozen=True)
class _Relation:
    name: str
    slots: dict[str, str]  # slot name -> value type
    statements: tuple[_Template, ...]
    patterns: tuple[_Pattern, ...]


def _rel(name: str, slots: dict[str, str], statements, patterns) -> _Relation:
    return _Relation(
        name,
        slots,
        tuple(_Template.parse(s) for s in statements),
        tuple(_Pattern(g, a, tuple(_Template.parse(q) for q in qs)) for g, a, qs in patterns),
    )


_RELATIONS: tuple[_Relation, ...] = (
    _rel(
        "born_in",
        {"person": "person", "city": "city"},
        (
            "{person} was born in {city}.",
            "{city} is the birthplace of {person}.",
            "{person} was born in the town of {city}.",
        ),
        (
            ("person", "city", (
                "Where was {person} born?",
                "In which town was {person} born?",
                "What is the birthplace of {person}?",
            )),
            ("city", "person", (
                "Who was born in {city}?",
                "Which person was born in {city}?",
            )),
        ),
    ),
    _rel(
        "birth_year",
        {"person": "person", "year": "year"},
        (
            "{person} was born in {year}.",
            "{person} was born in the year {year}.",
            "The year {year} saw the birth of {person}.",
        ),
        (
            ("person", "year", (
                "When was {person} born?",
                "In what year was {person} born?",
                "What is the birth year of {person}?",
            )),
        ),
    ),
    _rel(
        "plays",
        {"person": "person", "instrument": "instrument"},
        (
            "{person} plays the {instrument}.",
            "{person} is a skilled {instrument} player.",
            "The {instrument} is the instrument of {person}.",
        ),
        (
            ("person", "instrument", (
                "What instrument does {person} play?",
                "Which instrument does {person} play?",
                "What does {person} play?",
            )),
        ),
    ),
    _rel(
        "favourite_colour",
        {"person": "person", "colour": "colour"},
        (
            "{person}'s favourite colour is {colour}.",
            "{person} likes the colour {colour} best.",
            "The favourite colour of {person} is {colour}.",
        ),
        (
            ("person", "colour", (
                "What is {person}'s favourite colour?",
                "Which colour does {person} like best?",
                "What is the favourite colour of {person}?",
            )),
        ),
    ),
    _rel(
        "works_at",
        {"person": "person", "org": "org"},
        (
            "{person} works at the {org}.",
            "{person} is employed by the {org}.",
            "The {org} employs {person}.",
        ),
        (
            ("person", "org", (
                "Where does {person} work?",
                "Which organisation employs {person}?",
                "For which organisation does {person} work?",
            )),
            ("org", "person", (
                "Who works at the {org}?",
                "Who is employed by the {org}?",
            )),
        ),
    ),
    _rel(
        "studied",
        {"person": "person", "field": "field"},
        (
            "{person} studied {field}.",
            "{person} holds a degree in {field}.",
            "The subject studied by {person} was {field}.",
        ),
        (
            ("person", "field", (
                "What did {person} study?",
                "In which subject does {person} hold a degree?",
                "What subject did {person} study?",
            )),
        ),
    ),
    _rel(
        "speaks",
        {"person": "person", "language": "language"},
        (
            "{person} speaks {language}.",
            "{language} is the native language of {person}.",
            "{person} is a native speaker of {language}.",
        ),
        (
            ("person", "language", (
                "What language does {person} speak?",
                "Which language does {person} speak?",
                "What is the native language of {person}?",
            )),
        ),
    ),
    _rel(
        "founded",
        {"founder": "person", "org": "org", "year": "year"},
        (
            "{founder} founded the {org} in {year}.",
            "The {org} was founded by {founder} in {year}.",
            "In {year}, {founder} established the {org}.",
        ),
        (
            ("org", "founder", (
                "Who founded the {org}?",
                "Who established the {org}?",
            )),
            ("org", "year", (
                "When was the {org} founded?",
                "In what year was the {org} established?",
            )),
            ("founder", "org", (
                "What did {founder} found?",
                "Which organisation did {founder} establish?",
            )),
        ),
    ),
    _rel(
        "located_in",
        {"org": "org", "city": "city"},
        (
            "The {org} is located in {city}.",
            "The {org} has its headquarters in {city}.",
            "{city} is home to the {org}.",
        ),
        (
            ("org", "city", (
                "Where is the {org} located?",
                "In which town is the {org} based?",
                "Where are the headquarters of the {org}?",
            )),
            ("city", "org", (
                "Which organisation is based in {city}?",
                "What organisation has its headquarters in {city}?",
            )),
        ),
    ),
    _rel(
        "population",
        {"city": "city", "number": "number"},
        (
            "{city} has a population of {number}.",
            "About {number} people live in {city}.",
            "The population of {city} is {number}.",
        ),
        (
            ("city", "number", (
                "What is the population of {city}?",
                "How many people live in {city}?",
                "How large is the population of {city}?",
            )),
        ),
    ),
    _rel(
        "river",
        {"city": "city", "river": "river"},
        (
            "The {river} river flows through {city}.",
            "{city} lies on the {river} river.",
            "{city} was built on the banks of the {river} river.",
        ),
        (
            ("city", "river", (
                "Which river flows through {city}?",
                "On which river does {city} lie?",
                "What river runs through {city}?",
            )),
            ("river", "city", (
                "Which town lies on the {river} river?",
                "Through which town does the {river} river flow?",
            )),
        ),
    ),
    _rel(
        "mayor",
        {"city": "city", "person": "person"},
        (
            "The mayor of {city} is {person}.",
            "{person} serves as the mayor of {city}.",
            "{city} is governed by its mayor, {person}.",
        ),
        (
            ("city", "person", (
                "Who is the mayor of {city}?",
                "Who governs {city}?",
            )),
            ("person", "city", (
                "Of which town is {person} the mayor?",
                "Which town does {person} govern?",
            )),
        ),
    ),
)  # fmt: skip

_INTROS: dict[str, tuple[_Template, ...]] = {
    "person": tuple(
        _Template.parse(s)
        for s in (
            "This passage describes {person} and several related figures.",
            "The following account concerns {person} and the people around them.",
        )
    ),
    "city": tuple(
        _Template.parse(s)
        for s in (
            "This passage describes the town of {city} and its surroundings.",
            "The following account concerns {city} and the people connected to it.",
        )
    ),
    "org": tuple(
        _Template.parse(s)
        for s in (
            "This passage describes the {org} and the people connected to it.",
            "The following account concerns the history of the {org}.",
        )
    ),
}

# Sentences that mention an entity without stating any relation about it.
_MENTIONS: dict[str, tuple[_Template, ...]] = {
    "person": tuple(
        _Template.parse(s)
        for s in (
            "{person} is also mentioned in several old letters.",
            "Little is known about the early life of {person}.",
            "{person} later moved abroad.",
        )
    ),
    "city": tuple(
        _Template.parse(s)
        for s in (
            "{city} is known for its old market.",
            "Travellers often passed through {city}.",
        )
    ),
    "org": tuple(
        _Template.parse(s)
        for s in (
            "The {org} publishes a yearly report.",
            "The {org} was often praised in the press.",
        )
    ),
}

_FILLERS: tuple[_Template, ...] = tuple(
    _Template.parse(s)
    for s in (
        "The region has a long and varied history.",
        "Many of the old records were lost in a fire.",
        "Historians still debate some of these details.",
        "Much of this account is based on local archives.",
        "Life in the valley changed slowly over the years.",
        "Some of these events are still remembered today.",
        "Not every account of that time agrees on the details.",
        "The area was quiet for most of that period.",
    )
)

#: Short paragraphs are padded with filler / mention sentences up to this many words.
_MIN_CONTEXT_WORDS = 40
#: Upper bound of ``min_context_words`` (about four 384-token windows of names and words).
_MAX_CONTEXT_WORDS = 1000


def _parse_table(table: dict) -> dict:
    return {key: tuple(_Template.parse(s) for s in texts) for key, texts in table.items()}


# Tables of the harder settings (see synthetic_templates): paraphrased questions, high-overlap
# distractors and near-miss sentences by question pattern, pronoun statements by relation and
# pronominalised slot, their lead sentences by entity type, and long-context fillers.
_PARAPHRASES = _parse_table(_tables.PARAPHRASE_QUESTIONS)
_OVERLAP_DISTRACTORS = _parse_table(_tables.OVERLAP_DISTRACTORS)
_NEAR_MISSES = _parse_table(_tables.NEAR_MISSES)
_COREF_STATEMENTS = _parse_table(_tables.COREF_STATEMENTS)
_COREF_LEADS = _parse_table(_tables.COREF_LEADS)
_EXTRA_FILLERS = tuple(_Template.parse(s) for s in _tables.EXTRA_FILLERS)
_BRIDGE_PHRASES = _parse_table(_tables.BRIDGE_PHRASES)
_PRONOUNS = {"female": ("She", "Her"), "male": ("He", "His"), "thing": ("It", "Its")}

_RELATION_BY_NAME = {r.name: r for r in _RELATIONS}
_MAX_FACTS_PER_PARAGRAPH = 2 * len(_RELATIONS)


def _template_vocabulary() -> frozenset[str]:
    words: set[str] = set()
    texts: list[str] = []
    for rel in _RELATIONS:
        texts += [t.text for t in rel.statements]
        texts += [t.text for p in rel.patterns for t in p.templates]
    for group in (*_INTROS.values(), *_MENTIONS.values(), _FILLERS):
        texts += [t.text for t in group]
    # the harder settings' tables (names never collide with any template word)
    for table in (_PARAPHRASES, _OVERLAP_DISTRACTORS, _NEAR_MISSES, _COREF_STATEMENTS,
                  _COREF_LEADS, _BRIDGE_PHRASES):
        texts += [t.text for group in table.values() for t in group]
    texts += [t.text for t in _EXTRA_FILLERS] + ["she", "he", "it", "her", "his", "its"]
    texts += [*_INSTRUMENTS, *_COLOURS, *_FIELDS, *_ORG_KINDS]
    for text in texts:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", _SLOT_RE.sub(" ", text)))
    return frozenset(words)


_TEMPLATE_WORDS = _template_vocabulary()


def _check_tables() -> None:
    lower_types = {"instrument", "colour", "field", "year", "number"}
    for rel in _RELATIONS:
        for t in rel.statements:
            assert sorted(t.slots) == sorted(rel.slots), (rel.name, t.text)
            # lowercase values must never start a sentence (their span would change case)
            assert not (t.parts[0] == "" and rel.slots[t.parts[1]] in lower_types), t.text
        for p in rel.patterns:
            assert rel.slots[p.given] in _ENTITY_TYPES, (rel.name, p.given)
            assert p.answer in rel.slots and p.answer != p.given
            for t in p.templates:
                assert t.slots == (p.given,), t.text
            key = (rel.name, p.given, p.answer)
            for t in _PARAPHRASES[key]:
                assert t.slots == (p.given,), t.text
            for t in (*_OVERLAP_DISTRACTORS[key], *_NEAR_MISSES[key]):
                assert sorted(t.slots) == sorted((p.given, p.answer)), t.text
                assert not (t.parts[0] == "" and rel.slots[t.parts[1]] in lower_types), t.text
        for slot, type_ in rel.slots.items():
            templates = _COREF_STATEMENTS.get((rel.name, slot), ())
            assert templates or type_ not in _ENTITY_TYPES or all(
                p.given != slot for p in rel.patterns
            ), (rel.name, slot)
            for t in templates:
                others = [s for s in t.slots if s not in ("PRON", "POSS")]
                assert sorted(others) == sorted(s for s in rel.slots if s != slot), t.text
                assert t.parts[0] == "" and t.parts[1] in ("PRON", "POSS"), t.text
    keys = {(r.name, p.given, p.answer) for r in _RELATIONS for p in r.patterns}
    for table in (_PARAPHRASES, _OVERLAP_DISTRACTORS, _NEAR_MISSES):
        assert set(table) == keys, set(table) ^ keys
    for (name, given, answer), phrases in _BRIDGE_PHRASES.items():
        rel = _RELATION_BY_NAME[name]
        assert (given, answer) in [(p.given, p.answer) for p in rel.patterns], name
        assert rel.slots[answer] in _ENTITY_TYPES and rel.slots[answer] != "river", name
        assert all(t.slots == (given,) for t in phrases), name
    for type_, leads in _COREF_LEADS.items():
        assert all(t.slots == (type_,) for t in leads), type_
    assert all(not t.slots for t in _EXTRA_FILLERS)


_check_tables()

# --------------------------------------------------------------------------------------
# Paragraph construction
# --------------------------------------------------------------------------------------


@dataclass
class _Fact:
    relation: _Relation
    values: dict[str, str]
    spans: dict[str, int] = field(default_factory=dict)  # slot -> start offset in context


@dataclass(frozen=True)
class _Mention:
    type: str
    start: int
    text: str


@dataclass
class _Paragraph:
    title: str
    context: str
    facts: list[_Fact]
    mentions: list[_Mention]  # every typed value occurrence in the context, by position
    entities: dict[str, list[str]]  # type -> distinct values mentioned, first-seen order
    # (relation, given slot, entity, answer slot) of the near-miss sentences
    near_misses: list[tuple[str, str, str, str]] = field(default_factory=list)
    # wrong answers that distractor / near-miss sentences introduce (never named in a question)
    decoys: list[str] = field(default_factory=list)

    def facts_of(self, relation: str) -> list[_Fact]:
        return [f for f in self.facts if f.relation.name == relation]


@dataclass(frozen=True)
class _QAMeta:
    """Construction record of one question (for tests and analyses; not part of the API)."""

    kind: str  # "answerable" | "unanswerable-mentioned" | "unanswerable-absent" | "...-nearmiss"
    relation: str
    given_slot: str
    given_value: str
    answer_slot: str
    answer_type: str
    paragraph: _Paragraph
    # bridge questions: (relation, given slot, entity named in the question) of the inner fact
    # whose answer is ``given_value``, the bridge entity; None otherwise
    via: tuple[str, str, str] | None = None

    @property
    def named(self) -> str:
        """The entity the question names."""
        return self.via[2] if self.via else self.given_value


class _World:
    """Invents names and values; keeps one paragraph's names free of clashes."""

    def __init__(self, rng: random.Random, *, name_pool: int | None = None, seed: int = 0) -> None:
        self.rng = rng
        self.name_pool = name_pool
        self.seed = seed
        self._pools: dict[tuple[str, ...], list[str]] = {}
        self.reset()

    def _pool(self, endings: tuple[str, ...]) -> list[str]:
        """`name_pool` invented words with these endings, the same for every split of a seed."""
        pool = self._pools.get(endings)
        if pool is None:
            rng = random.Random(f"secondorder.synthetic.names|{self.seed}|{'/'.join(endings)}")
            chosen: dict[str, None] = {}
            while len(chosen) < self.name_pool:
                w = rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + rng.choice(endings)
                if w not in _TEMPLATE_WORDS:
                    chosen[w] = None
            pool = self._pools[endings] = list(chosen)
        return pool

    def reset(self) -> None:
        self.used_words: set[str] = set()  # invented words (lowercase) used in the paragraph
        self.used_values: set[str] = set()  # every value string used in the paragraph

    def _word(self, endings: tuple[str, ...]) -> str:
        rng = self.rng
        pool = self._pool(endings) if self.name_pool else None
        while True:
            if pool is not None:
                w = rng.choice(pool)
            else:
                w = rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + rng.choice(endings)
            if w not in self.used_words and w not in _TEMPLATE_WORDS:
                return w.capitalize()

    def fresh(self, type_: str, *, reserve: bool = True) -> str:
        """A new value of ``type_`` that does not occur in the paragraph."""
        rng = self.rng
        for _ in range(1000):
            if type_ == "person":
                words = [self._word(_FIRST_ENDINGS), self._word(_LAST_ENDINGS)]
                if words[0].lower() == words[1].lower():
                    continue
            elif type_ == "city":
                words = [self._word(_CITY_ENDINGS)]
            elif type_ == "river":
                words = [self._word(_RIVER_ENDINGS)]
            elif type_ == "language":
                words = [self._word(_LANGUAGE_ENDINGS)]
            elif type_ == "org":
                words = [self._word(_ORG_NAME_ENDINGS), rng.choice(_ORG_KINDS)]
            elif type_ == "year":
                words = [str(rng.randint(1700, 2025))]
            elif type_ == "number":
                words = [f"{rng.randint(1_200, 950_000):,}"]
            elif type_ == "instrument":
                words = [rng.choice(_INSTRUMENTS)]
            elif type_ == "colour":
                words = [rng.choice(_COLOURS)]
            elif type_ == "field":
                words = [rng.choice(_FIELDS)]
            else:  # pragma: no cover - tables are checked at import
                raise AssertionError(type_)
            value = " ".join(words)
            if value in self.used_values:
                continue
            if reserve:
                self.used_values.add(value)
                if type_ in _NAME_TYPES:
                    self.used_words.add(words[0].lower())
                    if type_ == "person":
                        self.used_words.add(words[1].lower())
            return value
        raise RuntimeError(f"could not invent a fresh {type_!r} value")  # pragma: no cover


def _group_sizes(rng: random.Random, n_facts: int, same_relation_share: float = 1.0) -> list[int]:
    """Split ``n_facts`` into relation groups (one relation each, 1-3 facts).

    With ``same_relation_share == 1`` every group has 2-3 facts (a single fact stays alone):
    every answer has a same-relation distractor. Below 1, each group has 2-3 facts with that
    probability and one fact otherwise (its answer is told apart by the question's relation).
    """
    if same_relation_share < 1.0:
        sizes: list[int] = []
        left = n_facts
        while left:
            size = min(left, rng.choice((2, 3)) if rng.random() < same_relation_share else 1)
            sizes.append(size)
            left -= size
        if len(sizes) <= len(_RELATIONS):
            return sizes
        # more groups than relations (only with > 12 facts): group as with share 1
    if n_facts == 1:
        return [1]
    lo, hi = -(-n_facts // 3), min(n_facts // 2, len(_RELATIONS))
    n_groups = rng.randint(lo, hi)
    sizes = [2] * n_groups
    for g in rng.sample(range(n_groups), n_facts - 2 * n_groups):
        sizes[g] += 1
    return sizes


def _render(template: _Template, values: dict[str, str], offset: int, out: list[str]):
    """Append the sentence to ``out``; return {slot: start offset} and the sentence length."""
    starts: dict[str, int] = {}
    pos = offset
    for k, part in enumerate(template.parts):
        if k % 2:
            starts[part] = pos
            part = values[part]
        out.append(part)
        pos += len(part)
    return starts, pos - offset


@dataclass(frozen=True)
class _Hardness:
    """The knobs of the harder settings; all off (0 / 40 words) is the original generator."""

    paraphrase_share: float = 0.0
    overlap_distractors: float = 0.0
    two_sentence_share: float = 0.0
    near_miss_share: float = 0.0
    min_context_words: int = _MIN_CONTEXT_WORDS
    bridge_share: float = 0.0


# A sentence to render: (template, values, fact or None, slot types, template slot -> fact slot)
_Sentence = tuple[_Template, dict[str, str], _Fact | None, dict[str, str], dict[str, str]]


def _pronouns(type_: str, value: str) -> tuple[str, str]:
    if type_ != "person":
        return _PRONOUNS["thing"]
    first = value.split()[0].lower()
    return _PRONOUNS["female" if first.endswith(_tables.FEMALE_ENDINGS) else "male"]


def _statement(rng: random.Random, fact: _Fact, hard: _Hardness) -> list[_Sentence]:
    """The sentence(s) stating ``fact``: one, or a lead sentence plus a pronoun statement."""
    rel = fact.relation
    identity = {s: s for s in rel.slots}
    if hard.two_sentence_share and rng.random() < hard.two_sentence_share:
        slots = [s for s in rel.slots if (rel.name, s) in _COREF_STATEMENTS]
        slot = rng.choice(slots)
        type_ = rel.slots[slot]
        subj, poss = _pronouns(type_, fact.values[slot])
        lead = (rng.choice(_COREF_LEADS[type_]), {type_: fact.values[slot]}, fact,
                {type_: type_}, {type_: slot})
        values = {**fact.values, "PRON": subj, "POSS": poss}
        rest = {s: s for s in rel.slots if s != slot}
        body = (rng.choice(_COREF_STATEMENTS[(rel.name, slot)]), values, fact, rel.slots, rest)
        return [lead, body]
    return [(rng.choice(rel.statements), fact.values, fact, rel.slots, identity)]


def _two_slot(template: _Template, rel: _Relation, given: str, given_value: str,
              answer: str, answer_value: str) -> _Sentence:
    types = {given: rel.slots[given], answer: rel.slots[answer]}
    return (template, {given: given_value, answer: answer_value}, None, types, {})


def _bridges(facts: list[_Fact]) -> list[tuple[_Fact, _Pattern, _Fact, _Pattern]]:
    """(inner fact, its pattern, outer fact, its pattern): the inner answer is the outer given."""
    out = []
    for inner in facts:
        for p1 in inner.relation.patterns:
            if (inner.relation.name, p1.given, p1.answer) not in _BRIDGE_PHRASES:
                continue
            bridge = inner.values[p1.answer]
            for outer in facts:
                if outer.relation is inner.relation:
                    continue
                for p2 in outer.relation.patterns:
                    if (outer.values[p2.given] == bridge
                            and inner.values[p1.given] not in outer.values.values()):
                        out.append((inner, p1, outer, p2))
    return out


def _add_bridge_fact(rng: random.Random, world: _World, facts: list[_Fact], entities) -> None:
    """A fact about an answer entity of another fact, so that a bridge question can be asked."""
    options = []
    for inner in facts:
        for p1 in inner.relation.patterns:
            if (inner.relation.name, p1.given, p1.answer) not in _BRIDGE_PHRASES:
                continue
            type_ = inner.relation.slots[p1.answer]
            for rel in _RELATIONS:
                if rel is inner.relation:
                    continue
                for p2 in rel.patterns:
                    stated = [f.values[p2.given] for f in facts if f.relation is rel]
                    bridge = inner.values[p1.answer]
                    if rel.slots[p2.given] == type_ and bridge not in stated:
                        options.append((bridge, rel, p2))
    if not options:
        return
    bridge, rel, p2 = rng.choice(options)
    values = {}
    for slot, type_ in rel.slots.items():
        values[slot] = bridge if slot == p2.given else world.fresh(type_)
        if slot != p2.given and type_ in entities:
            entities[type_].append(values[slot])
    facts.append(_Fact(rel, values))


def _build_paragraph(
    rng: random.Random,
    world: _World,
    facts_range: tuple[int, int],
    same_relation_share: float,
    hard: _Hardness = _Hardness(),
) -> _Paragraph:
    world.reset()
    entities: dict[str, list[str]] = {t: [] for t in _ENTITY_TYPES}
    n_facts = rng.randint(*facts_range)
    sizes = _group_sizes(rng, n_facts, same_relation_share)
    relations = rng.sample(_RELATIONS, len(sizes))
    facts: list[_Fact] = []
    for rel, size in zip(relations, sizes, strict=True):
        # distinct values per slot within the group, so every question about it is well posed
        columns: dict[str, list[str]] = {}
        for slot, type_ in rel.slots.items():
            col: list[str] = []
            pool = entities.get(type_)
            for _ in range(size):
                reusable = [e for e in pool if e not in col] if pool else []
                if reusable and rng.random() < 0.5:
                    col.append(rng.choice(reusable))
                else:
                    value = world.fresh(type_)
                    col.append(value)
                    if pool is not None:
                        pool.append(value)
            columns[slot] = col
        for j in range(size):
            facts.append(_Fact(rel, {s: c[j] for s, c in columns.items()}))

    main_fact = facts[0]
    main_slot, main_value = next(
        (s, v) for s, v in main_fact.values.items() if main_fact.relation.slots[s] in _INTROS
    )
    main_type = main_fact.relation.slots[main_slot]

    if hard.bridge_share and rng.random() < hard.bridge_share:
        _add_bridge_fact(rng, world, facts, entities)

    # units of sentences that stay together (a two-sentence statement is one unit)
    body: list[list[_Sentence]] = [_statement(rng, fact, hard) for fact in facts]
    for _ in range(rng.randint(0, 2)):  # mention-only sentences (no relation stated)
        type_ = rng.choice(("person", "person", "city", "org"))
        pool = entities[type_]
        if pool and rng.random() < 0.4:
            value = rng.choice(pool)
        else:
            value = world.fresh(type_)
            pool.append(value)
        body.append([(rng.choice(_MENTIONS[type_]), {type_: value}, None, {type_: type_}, {})])
    # Values that distractor / near-miss sentences introduce as a (wrong) answer are never
    # named in a question: "Who was born in U?" after "X's sister was born in U." is answerable
    # ("X's sister") though no person span is.
    tainted: list[str] = []
    near_misses: list[tuple[str, str, str, str]] = []
    if hard.overlap_distractors:
        for fact in facts:
            rel = fact.relation
            for pattern in rel.patterns:
                if rng.random() < hard.overlap_distractors:
                    key = (rel.name, pattern.given, pattern.answer)
                    wrong = world.fresh(rel.slots[pattern.answer])
                    tainted.append(wrong)
                    body.append([_two_slot(rng.choice(_OVERLAP_DISTRACTORS[key]), rel,
                                           pattern.given, fact.values[pattern.given],
                                           pattern.answer, wrong)])
    if hard.near_miss_share:
        for name in dict.fromkeys(f.relation.name for f in facts):
            rel = _RELATION_BY_NAME[name]
            if rng.random() >= hard.near_miss_share:
                continue
            pattern = rng.choice(rel.patterns)
            type_ = rel.slots[pattern.given]
            stated = [f.values[pattern.given] for f in facts if f.relation is rel]
            lacking = [e for e in entities[type_] if e not in stated]
            if lacking and rng.random() < 0.5:
                entity = rng.choice(lacking)
            else:
                entity = world.fresh(type_)
                entities[type_].append(entity)
            wrong = world.fresh(rel.slots[pattern.answer])
            tainted.append(wrong)
            key = (rel.name, pattern.given, pattern.answer)
            near_misses.append((rel.name, pattern.given, entity, pattern.answer))
            body.append([_two_slot(rng.choice(_NEAR_MISSES[key]), rel, pattern.given, entity,
                                   pattern.answer, wrong)])
    fillers = rng.sample(_FILLERS, len(_FILLERS))
    n_fillers = rng.randint(0, 2)
    body += [[(f, {}, None, {}, {})] for f in fillers[:n_fillers]]
    # pad short paragraphs (names count as ~2 words, hence the rough estimate)
    n_words = 10 + sum(len(t.text.split()) + len(t.slots) for unit in body for t, *_ in unit)
    for filler in fillers[n_fillers:]:
        if n_words >= hard.min_context_words:
            break
        body.append([(filler, {}, None, {}, {})])
        n_words += len(filler.text.split())
    # long contexts: background facts about fresh entities (askable too) and more fillers
    extra = rng.sample(_EXTRA_FILLERS, len(_EXTRA_FILLERS)) if n_words < hard.min_context_words else []
    while n_words < hard.min_context_words:
        if extra and rng.random() < 0.5:
            unit = [(extra.pop(), {}, None, {}, {})]
        else:
            rel = rng.choice(_RELATIONS)
            fact = _Fact(rel, {slot: world.fresh(type_) for slot, type_ in rel.slots.items()})
            facts.append(fact)
            unit = _statement(rng, fact, hard)
        body.append(unit)
        n_words += sum(len(t.text.split()) + len(t.slots) for t, *_ in unit)
    rng.shuffle(body)
    intro = (rng.choice(_INTROS[main_type]), {main_type: main_value}, None,
             {main_type: main_type}, {})

    pieces: list[str] = []
    mentions: list[_Mention] = []
    offset = 0
    sentences = [intro, *(sentence for unit in body for sentence in unit)]
    for k, (template, values, fact, types, fact_slots) in enumerate(sentences):
        if k:
            pieces.append(" ")
            offset += 1
        starts, length = _render(template, values, offset, pieces)
        offset += length
        for slot, start in starts.items():
            if slot in types:
                mentions.append(_Mention(types[slot], start, values[slot]))
        if fact is not None:
            for slot, fact_slot in fact_slots.items():
                fact.spans[fact_slot] = starts[slot]
    context = "".join(pieces)
    mentions.sort(key=lambda m: m.start)
    seen: dict[str, list[str]] = {t: [] for t in _ENTITY_TYPES}
    for m in mentions:
        if m.type in seen and m.text not in seen[m.type] and m.text not in tainted:
            seen[m.type].append(m.text)
    return _Paragraph(
        main_value.replace(" ", "_"), context, facts, mentions, seen, near_misses, tainted
    )


def _question_text(
    rel: _Relation, pattern: _Pattern, value: str, rng: random.Random, paraphrase_share: float
) -> str:
    templates = pattern.templates
    if paraphrase_share and rng.random() < paraphrase_share:
        templates = _PARAPHRASES[(rel.name, pattern.given, pattern.answer)]
    text = "".join(value if k % 2 else part for k, part in enumerate(rng.choice(templates).parts))
    return text[0].upper() + text[1:]


def _answerable(rng: random.Random, para: _Paragraph, asked: set[tuple], hard: _Hardness):
    if hard.bridge_share:
        chains = [c for c in _bridges(para.facts) if _bridge_key(*c) not in asked]
        if chains and rng.random() < hard.bridge_share:
            inner, p1, outer, p2 = rng.choice(chains)
            asked.add(_bridge_key(inner, p1, outer, p2))
            named = inner.values[p1.given]
            phrase = rng.choice(_BRIDGE_PHRASES[(inner.relation.name, p1.given, p1.answer)])
            value = "".join(named if k % 2 else part for k, part in enumerate(phrase.parts))
            rel = outer.relation
            meta = _QAMeta(
                "answerable-bridge", rel.name, p2.given, outer.values[p2.given], p2.answer,
                rel.slots[p2.answer], para, (inner.relation.name, p1.given, named),
            )  # fmt: skip
            answer = {"text": [outer.values[p2.answer]], "answer_start": [outer.spans[p2.answer]]}
            return _question_text(rel, p2, value, rng, hard.paraphrase_share), answer, meta
    options = [
        (fact, pattern)
        for fact in para.facts
        for pattern in fact.relation.patterns
        if (fact.relation.name, pattern.given, fact.values[pattern.given], pattern.answer)
        not in asked
    ]
    if not options:
        return None
    fact, pattern = rng.choice(options)
    rel = fact.relation
    given = fact.values[pattern.given]
    asked.add((rel.name, pattern.given, given, pattern.answer))
    meta = _QAMeta(
        "answerable", rel.name, pattern.given, given, pattern.answer,
        rel.slots[pattern.answer], para,
    )  # fmt: skip
    answer = {"text": [fact.values[pattern.answer]], "answer_start": [fact.spans[pattern.answer]]}
    return _question_text(rel, pattern, given, rng, hard.paraphrase_share), answer, meta


def _bridge_key(inner: _Fact, p1: _Pattern, outer: _Fact, p2: _Pattern) -> tuple:
    return ("bridge", inner.relation.name, p1.given, inner.values[p1.given], outer.relation.name,
            p2.given, p2.answer)


def _unanswerable(
    rng: random.Random, world: _World, para: _Paragraph, asked: set[tuple], hard: _Hardness
):
    near = [nm for nm in para.near_misses if nm not in asked] if para.near_misses else []
    if near:  # a question whose plausible answer sits in a near-miss sentence
        name, given_slot, entity, answer_slot = rng.choice(near)
        rel = _RELATION_BY_NAME[name]
        pattern = next(p for p in rel.patterns if (p.given, p.answer) == (given_slot, answer_slot))
        asked.add((name, given_slot, entity, answer_slot))
        meta = _QAMeta("unanswerable-nearmiss", name, given_slot, entity, answer_slot,
                       rel.slots[answer_slot], para)
        text = _question_text(rel, pattern, entity, rng, hard.paraphrase_share)
        return text, {"text": [], "answer_start": []}, meta
    relations: list[_Relation] = []
    for fact in para.facts:
        if fact.relation not in relations:
            relations.append(fact.relation)
    mentioned = []  # (relation, pattern, entity in paragraph without that fact)
    for rel in relations:
        facts = para.facts_of(rel.name)
        for pattern in rel.patterns:
            stated = [f.values[pattern.given] for f in facts]
            for entity in para.entities[rel.slots[pattern.given]]:
                key = (rel.name, pattern.given, entity, pattern.answer)
                if entity not in stated and key not in asked:
                    mentioned.append((rel, pattern, entity))
    if mentioned and rng.random() < 0.7:
        kind = "unanswerable-mentioned"
        rel, pattern, entity = rng.choice(mentioned)
    else:
        kind = "unanswerable-absent"
        rel = rng.choice(relations)
        pattern = rng.choice(rel.patterns)
        # a name that does not occur in the paragraph and shares no word with its names
        entity = world.fresh(rel.slots[pattern.given], reserve=True)
    asked.add((rel.name, pattern.given, entity, pattern.answer))
    meta = _QAMeta(
        kind, rel.name, pattern.given, entity, pattern.answer, rel.slots[pattern.answer], para
    )
    text = _question_text(rel, pattern, entity, rng, hard.paraphrase_share)
    return text, {"text": [], "answer_start": []}, meta


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def _check_range(name: str, value) -> tuple[int, int]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of integers, got {value!r}") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be a (min, max) pair of integers, got {value!r}")
    if lo < 1 or hi < lo:
        raise ValueError(f"{name} must satisfy 1 <= min <= max, got {value!r}")
    return lo, hi


def _generate(
    num_questions: int,
    *,
    seed: int,
    unanswerable_fraction: float = 1 / 3,
    facts_per_paragraph: tuple[int, int] = (3, 6),
    questions_per_paragraph: tuple[int, int] = (2, 4),
    split: str = "train",
    name_pool: int | None = None,
    same_relation_share: float = 1.0,
    paraphrase_share: float = 0.0,
    overlap_distractors: float = 0.0,
    two_sentence_share: float = 0.0,
    near_miss_share: float = 0.0,
    min_context_words: int = _MIN_CONTEXT_WORDS,
    bridge_share: float = 0.0,
) -> tuple[list[dict], list[_QAMeta]]:
    """Like :func:`generate_squad_v2`, plus a construction record per question."""
    if isinstance(num_questions, bool) or not isinstance(num_questions, int):
        raise ValueError(f"num_questions must be an integer, got {num_questions!r}")
    if num_questions < 1:
        raise ValueError(f"num_questions must be >= 1, got {num_questions}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(unanswerable_fraction, bool) or not isinstance(
        unanswerable_fraction, int | float
    ):
        raise ValueError(f"unanswerable_fraction must be a number, got {unanswerable_fraction!r}")
    if not 0.0 <= unanswerable_fraction < 1.0:
        raise ValueError(f"unanswerable_fraction must be in [0, 1), got {unanswerable_fraction}")
    facts_range = _check_range("facts_per_paragraph", facts_per_paragraph)
    if facts_range[1] > _MAX_FACTS_PER_PARAGRAPH:
        raise ValueError(
            f"facts_per_paragraph max must be <= {_MAX_FACTS_PER_PARAGRAPH}, "
            f"got {facts_per_paragraph!r}"
        )
    questions_range = _check_range("questions_per_paragraph", questions_per_paragraph)
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    if name_pool is not None and (isinstance(name_pool, bool) or not isinstance(name_pool, int)
                                  or not 50 <= name_pool <= 2000):
        raise ValueError(f"name_pool must be null or an integer in [50, 2000], got {name_pool!r}")
    if (isinstance(same_relation_share, bool) or not isinstance(same_relation_share, int | float)
            or not 0.0 <= same_relation_share <= 1.0):
        raise ValueError(
            f"same_relation_share must be a number in [0, 1], got {same_relation_share!r}"
        )
    shares = {"paraphrase_share": paraphrase_share, "overlap_distractors": overlap_distractors,
              "two_sentence_share": two_sentence_share, "near_miss_share": near_miss_share,
              "bridge_share": bridge_share}
    for name, value in shares.items():
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0):
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if (isinstance(min_context_words, bool) or not isinstance(min_context_words, int)
            or not _MIN_CONTEXT_WORDS <= min_context_words <= _MAX_CONTEXT_WORDS):
        raise ValueError(
            f"min_context_words must be an integer in [{_MIN_CONTEXT_WORDS}, "
            f"{_MAX_CONTEXT_WORDS}], got {min_context_words!r}"
        )
    hard = _Hardness(paraphrase_share, overlap_distractors, two_sentence_share,
                     near_miss_share, min_context_words, bridge_share)

    rng = random.Random(f"secondorder.synthetic.squad_v2|{split}|{seed}")
    world = _World(rng, name_pool=name_pool, seed=seed)
    n_unanswerable = round(unanswerable_fraction * num_questions)
    unanswerable = set(rng.sample(range(num_questions), n_unanswerable))

    records: list[dict] = []
    metas: list[_QAMeta] = []
    i = 0
    while i < num_questions:
        para = _build_paragraph(rng, world, facts_range, same_relation_share, hard)
        n_q = min(rng.randint(*questions_range), num_questions - i)
        asked: set[tuple] = set()
        for _ in range(n_q):
            if i in unanswerable:
                made = _unanswerable(rng, world, para, asked, hard)
            else:
                made = _answerable(rng, para, asked, hard)
            if made is None:  # every fact already asked: continue in a new paragraph
                break
            question, answers, meta = made
            records.append(
                {
                    "id": f"{split}-{seed}-{i:06d}",
                    "title": para.title,
                    "context": para.context,
                    "question": question,
                    "answers": answers,
                }
            )
            metas.append(meta)
            i += 1
    return records, metas


def generate_squad_v2(
    num_questions: int,
    *,
    seed: int,
    unanswerable_fraction: float = 1 / 3,
    facts_per_paragraph: tuple[int, int] = (3, 6),
    questions_per_paragraph: tuple[int, int] = (2, 4),
    split: str = "train",
    name_pool: int | None = None,
    same_relation_share: float = 1.0,
    paraphrase_share: float = 0.0,
    overlap_distractors: float = 0.0,
    two_sentence_share: float = 0.0,
    near_miss_share: float = 0.0,
    min_context_words: int = _MIN_CONTEXT_WORDS,
    bridge_share: float = 0.0,
) -> list[dict]:
    """Generate a deterministic synthetic data set in the HF ``squad_v2`` record format.

    Args:
        num_questions: number of records (questions) to return, >= 1.
        seed: RNG seed; with ``split`` it fully determines the output.
        unanswerable_fraction: share of unanswerable questions in [0, 1); the count is
            exactly ``round(unanswerable_fraction * num_questions)``.
        facts_per_paragraph: inclusive (min, max) number of facts stated per paragraph
            (max <= 24).  With min >= 2 and ``same_relation_share=1`` every asked answer has
            a same-relation distractor.
        questions_per_paragraph: inclusive (min, max) questions per paragraph.  A paragraph
            may get fewer when all its facts have been asked already.
        split: salts the RNG (``"train"`` and ``"validation"`` differ) and prefixes ids.
        name_pool: if set, invented names are drawn from a fixed pool of this many words
            per kind of name (first names, surnames, towns, ...), shared by all splits of
            a seed, instead of being invented afresh. Names then recur, as they do in
            SQuAD, and a locally trained tokenizer keeps each as one token, so a small
            model can match the name in a question with its mentions in the context.
        same_relation_share: probability that a relation group of a paragraph states 2-3
            facts of that relation (an answer then has a same-relation distractor, and only
            the entity named in the question tells them apart) rather than one (the answer
            is then told apart from same-type values by the question's relation). 1 (the
            default): every group of a paragraph with >= 2 facts has 2-3 facts.
        paraphrase_share: probability that a question is drawn from paraphrase templates that
            avoid the relation's statement words ("What is the hometown of X?" for "X was born
            in T."). 0 (the default): the question templates re-use them.
        overlap_distractors: probability, per fact and question pattern, of a distractor
            sentence naming the question's entity with the relation's words but stating a
            different fact ("X's sister was born in U."). 0: none.
        two_sentence_share: probability that a fact is stated in two sentences, a lead that
            names an entity and the statement with a pronoun for it ("X grew up in a large
            family. She was born in T."): the answer's sentence lacks the question's entity.
        near_miss_share: probability, per relation of the paragraph, of a near-miss sentence
            (negated, planned or wrongly claimed: "X planned to study law but never did.") for
            an entity that lacks that fact; unanswerable questions are asked about such an
            entity whenever a paragraph has one not yet asked about. 0: none.
        min_context_words: contexts shorter than about this many words are padded, beyond
            the 8 neutral fillers, with background facts about fresh entities (asked about
            like the others) and more fillers. 40 (the default) keeps contexts under ~130
            words; e.g. 250 makes most contexts longer than one 256-token window.
        bridge_share: probability that a paragraph gets a fact about the answer entity of
            another fact (the town a person was born in: its river), and that an answerable
            question is asked through such a link when the paragraph has one ("Which river
            flows through the birthplace of X?"; kind ``"answerable-bridge"``). 0: none.

    Returns:
        ``[{"id", "title", "context", "question", "answers": {"text", "answer_start"}}]``;
        records of one paragraph are consecutive and share ``title`` and ``context``;
        unanswerable questions have ``{"text": [], "answer_start": []}``.  Ids are
        ``f"{split}-{seed}-{index:06d}"``.
    """
    records, _ = _generate(
        num_questions,
        seed=seed,
        unanswerable_fraction=unanswerable_fraction,
        facts_per_paragraph=facts_per_paragraph,
        questions_per_paragraph=questions_per_paragraph,
        split=split,
        name_pool=name_pool,
        same_relation_share=same_relation_share,
        paraphrase_share=paraphrase_share,
        overlap_distractors=overlap_distractors,
        two_sentence_share=two_sentence_share,
        near_miss_share=near_miss_share,
        min_context_words=min_context_words,
        bridge_share=bridge_share,
    )
    return records
