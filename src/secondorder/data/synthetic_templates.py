"""Template tables of the harder synthetic SQuAD 2.0 settings (see :mod:`.synthetic`).

Plain strings only; :mod:`secondorder.data.synthetic` parses and checks them at import.
``{slot}`` names a value slot of the relation; ``{PRON}`` / ``{POSS}`` stand for a subject
pronoun / possessive (She, He, It / Her, His, Its) referring back to the entity named in the
sentence before. Questions are keyed by ``(relation, given slot, answer slot)``, i.e. by the
question pattern of :data:`secondorder.data.synthetic._RELATIONS` they belong to.
"""

from __future__ import annotations

#: Paraphrased questions (``paraphrase_share``): none of them re-uses the relation words of
#: the relation's statement templates (born, birthplace, plays, employs, founded, ...).
PARAPHRASE_QUESTIONS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("born_in", "person", "city"): (
        "What is the hometown of {person}?",
        "Where does {person} come from originally?",
        "{person} is a native of which place?",
    ),
    ("born_in", "city", "person"): (
        "Whose hometown is {city}?",
        "Which person comes from {city} originally?",
    ),
    ("birth_year", "person", "year"): (
        "What year did {person} enter the world?",
        "Since which year has {person} been alive?",
    ),
    ("plays", "person", "instrument"): (
        "On what does {person} perform music?",
        "What does {person} make music on?",
    ),
    ("favourite_colour", "person", "colour"): (
        "Which hue does {person} prefer?",
        "What shade is {person} most fond of?",
    ),
    ("works_at", "person", "org"): (
        "Where does {person} have a job?",
        "Which organisation pays the wages of {person}?",
    ),
    ("works_at", "org", "person"): (
        "Who has a job at the {org}?",
        "Who is on the staff of the {org}?",
    ),
    ("studied", "person", "field"): (
        "What was the academic discipline of {person}?",
        "In what discipline was {person} trained?",
    ),
    ("speaks", "person", "language"): (
        "Which tongue is {person} fluent in?",
        "In what tongue does {person} converse?",
    ),
    ("founded", "org", "founder"): (
        "Who created the {org}?",
        "Who set up the {org}?",
    ),
    ("founded", "org", "year"): (
        "Since what year has the {org} existed?",
        "When did the {org} come into being?",
    ),
    ("founded", "founder", "org"): (
        "What did {founder} create?",
        "Which organisation was set up by {founder}?",
    ),
    ("located_in", "org", "city"): (
        "In which town does the {org} sit?",
        "Where can one find the {org}?",
    ),
    ("located_in", "city", "org"): (
        "Which organisation sits in {city}?",
        "What organisation can one find in {city}?",
    ),
    ("population", "city", "number"): (
        "How many inhabitants does {city} have?",
        "How many residents does {city} count?",
    ),
    ("river", "city", "river"): (
        "What waterway passes {city}?",
        "Which stream crosses {city}?",
    ),
    ("river", "river", "city"): (
        "What town does the {river} pass?",
        "Which town does the {river} cross?",
    ),
    ("mayor", "city", "person"): (
        "Who leads the council of {city}?",
        "Who heads the local government of {city}?",
    ),
    ("mayor", "person", "city"): (
        "Which town is led by {person}?",
        "Where does {person} hold the top civic office?",
    ),
}

#: High-overlap distractors (``overlap_distractors``): the entity the question names and the
#: relation's words, but a different fact (a relative's, a branch's, a past one). The answer
#: slot gets a fresh value of the answer type.
OVERLAP_DISTRACTORS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("born_in", "person", "city"): (
        "{person}'s sister was born in {city}.",
        "{person}'s father was born in the town of {city}.",
    ),
    ("born_in", "city", "person"): (
        "{person} was born in a village near {city}.",
    ),
    ("birth_year", "person", "year"): (
        "{person}'s sister was born in {year}.",
        "{person}'s first child was born in the year {year}.",
    ),
    ("plays", "person", "instrument"): (
        "{person}'s brother plays the {instrument}.",
        "{person} teaches pupils who play the {instrument}.",
    ),
    ("favourite_colour", "person", "colour"): (
        "The favourite colour of {person}'s son is {colour}.",
        "{person}'s mother likes the colour {colour} best.",
    ),
    ("works_at", "person", "org"): (
        "{person}'s partner works at the {org}.",
        "{person}'s sister is employed by the {org}.",
    ),
    ("works_at", "org", "person"): (
        "{person} works at a cafe next to the {org}.",
    ),
    ("studied", "person", "field"): (
        "{person}'s daughter studied {field}.",
        "{person}'s partner holds a degree in {field}.",
    ),
    ("speaks", "person", "language"): (
        "{person}'s grandmother speaks {language}.",
        "{person}'s teacher was a native speaker of {language}.",
    ),
    ("founded", "org", "founder"): (
        "{founder} joined the {org} soon after it was founded.",
    ),
    ("founded", "org", "year"): (
        "The first branch of the {org} abroad was founded in {year}.",
    ),
    ("founded", "founder", "org"): (
        "{founder}'s son founded the {org}.",
    ),
    ("located_in", "org", "city"): (
        "A branch of the {org} is located in {city}.",
        "The {org} has a small office in {city}, but not its headquarters.",
    ),
    ("located_in", "city", "org"): (
        "The {org} was located in {city} long ago, before it moved.",
    ),
    ("population", "city", "number"): (
        "The population of {city} was {number} a century ago.",
        "The wider region around {city} has a population of {number}.",
    ),
    ("river", "city", "river"): (
        "The {river} river flows through the hills north of {city}.",
    ),
    ("river", "river", "city"): (
        "{city} lies on a stream that feeds the {river} river.",
    ),
    ("mayor", "city", "person"): (
        "The deputy mayor of {city} is {person}.",
        "{person} served as the mayor of {city} long ago.",
    ),
    ("mayor", "person", "city"): (
        "{person}'s brother is the mayor of {city}.",
    ),
}

#: Near-miss sentences (``near_miss_share``) for an entity that lacks the fact: the relation
#: negated, only planned, or wrongly claimed. The answer slot gets a fresh value of the answer
#: type, a plausible but wrong answer to the (unanswerable) question about that entity.
NEAR_MISSES: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("born_in", "person", "city"): (
        "{person} was not born in {city}, as is often claimed.",
        "{person} often claimed to have been born in {city}, but this was false.",
    ),
    ("born_in", "city", "person"): (
        "{person} was wrongly said to have been born in {city}.",
    ),
    ("birth_year", "person", "year"): (
        "{person} was not born in {year}, as some records claim.",
        "Some records wrongly say that {person} was born in {year}.",
    ),
    ("plays", "person", "instrument"): (
        "{person} wanted to play the {instrument} but never learned.",
        "{person} does not play the {instrument}.",
    ),
    ("favourite_colour", "person", "colour"): (
        "{person}'s least favourite colour is {colour}.",
        "{person} dislikes the colour {colour}.",
    ),
    ("works_at", "person", "org"): (
        "{person} applied to work at the {org} but was turned down.",
        "{person} has never worked at the {org}.",
    ),
    ("works_at", "org", "person"): (
        "{person} applied to work at the {org} but was turned down.",
    ),
    ("studied", "person", "field"): (
        "{person} planned to study {field} but never did.",
        "{person} never studied {field}.",
    ),
    ("speaks", "person", "language"): (
        "{person} never learned to speak {language}.",
        "{person} does not speak {language}.",
    ),
    ("founded", "org", "founder"): (
        "{founder} hoped to found the {org} but never did.",
    ),
    ("founded", "org", "year"): (
        "The {org} was almost founded in {year}, but the plan failed.",
    ),
    ("founded", "founder", "org"): (
        "{founder} planned to found the {org} but never did.",
    ),
    ("located_in", "org", "city"): (
        "The {org} once planned to move to {city}, but never did.",
    ),
    ("located_in", "city", "org"): (
        "The {org} once planned to move to {city}, but never did.",
    ),
    ("population", "city", "number"): (
        "Planners once hoped that {city} would reach a population of {number}.",
    ),
    ("river", "city", "river"): (
        "The {river} river does not flow through {city}.",
    ),
    ("river", "river", "city"): (
        "The {river} river does not flow through {city}.",
    ),
    ("mayor", "city", "person"): (
        "{person} ran for mayor of {city} but lost.",
        "{person} never became the mayor of {city}.",
    ),
    ("mayor", "person", "city"): (
        "{person} ran for mayor of {city} but lost.",
    ),
}

#: Two-sentence statements (``two_sentence_share``): the fact with one entity slot replaced by
#: a pronoun, keyed by (relation, pronominalised slot); preceded by a lead sentence naming it.
COREF_STATEMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("born_in", "person"): ("{PRON} was born in {city}.", "{PRON} was born in the town of {city}."),
    ("born_in", "city"): ("{PRON} is the birthplace of {person}.",),
    ("birth_year", "person"): ("{PRON} was born in {year}.", "{PRON} was born in the year {year}."),
    ("plays", "person"): ("{PRON} plays the {instrument}.", "{PRON} is a skilled {instrument} player."),
    ("favourite_colour", "person"): ("{POSS} favourite colour is {colour}.",),
    ("works_at", "person"): ("{PRON} works at the {org}.", "{PRON} is employed by the {org}."),
    ("works_at", "org"): ("{PRON} employs {person}.",),
    ("studied", "person"): ("{PRON} studied {field}.", "{PRON} holds a degree in {field}."),
    ("speaks", "person"): ("{PRON} speaks {language}.", "{PRON} is a native speaker of {language}."),
    ("founded", "founder"): ("{PRON} founded the {org} in {year}.",),
    ("founded", "org"): ("{PRON} was founded by {founder} in {year}.",),
    ("located_in", "org"): ("{PRON} is located in {city}.", "{PRON} has its headquarters in {city}."),
    ("located_in", "city"): ("{PRON} is home to the {org}.",),
    ("population", "city"): ("{PRON} has a population of {number}.",),
    ("river", "city"): ("{PRON} lies on the {river} river.",),
    ("river", "river"): ("{PRON} flows through {city}.",),
    ("mayor", "city"): ("{POSS} mayor is {person}.", "{PRON} is governed by {person}."),
    ("mayor", "person"): ("{PRON} serves as the mayor of {city}.",),
}  # fmt: skip

#: Lead sentences of a two-sentence statement: name the entity, state nothing asked about.
COREF_LEADS: dict[str, tuple[str, ...]] = {
    "person": (
        "{person} grew up in a large family.",
        "{person} was a quiet and careful child.",
        "{person} travelled widely as a young adult.",
        "{person} kept a diary for many years.",
    ),
    "city": (
        "{city} was once a small fishing village.",
        "{city} grew quickly in the last century.",
    ),
    "org": (
        "The {org} began as a small circle of friends.",
        "The {org} has changed a great deal over time.",
    ),
    "river": (
        "The {river} river is wide and slow.",
        "The {river} river floods almost every spring.",
    ),
}

#: First-name endings read as female (She/Her); the others read as male (He/His).
FEMALE_ENDINGS = ("a", "e")

#: Neutral sentences that pad long contexts (``min_context_words``) besides background facts.
EXTRA_FILLERS: tuple[str, ...] = (
    "The winters there were long and the summers short.",
    "Most families kept a small garden behind the house.",
    "A new road was built along the coast at that time.",
    "The old bridge was repaired several times.",
    "Trade with the neighbouring valleys grew slowly.",
    "Several festivals were held there every autumn.",
    "The local newspaper appeared once a week.",
    "A railway line reached the area much later.",
    "The harvest failed twice in one decade.",
    "Visitors often remarked on the quiet streets.",
    "The main square was paved with grey stone.",
    "Letters from that period are kept in a small archive.",
    "The weather was often blamed for poor harvests.",
    "Few of the original buildings survive today.",
    "A small school was opened near the church.",
    "The hills to the north were covered in forest.",
    "Fishing remained important for a long time.",
    "The population grew quickly after the new road opened.",
    "Many young people left to find work elsewhere.",
    "The town hall was rebuilt after a storm.",
    "Markets were held on the first day of each month.",
    "Local musicians often played at weddings.",
    "A few travellers wrote short accounts of their visits.",
    "The old mill stood empty for many years.",
)

#: Bridge questions (``bridge_share``): a noun phrase that names an entity through another fact,
#: keyed by that fact's question pattern; it replaces the entity in an ordinary question ("Which
#: river flows through {city}?" -> "Which river flows through the birthplace of X?"). The answer
#: then sits in a sentence that names the bridge entity, not X. Organisation phrases have no
#: article: questions always say "the {org}".
BRIDGE_PHRASES: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("born_in", "person", "city"): ("the birthplace of {person}", "the town where {person} was born"),
    ("born_in", "city", "person"): ("the person born in {city}",),
    ("works_at", "person", "org"): ("organisation that employs {person}",
                                    "organisation where {person} works"),
    ("works_at", "org", "person"): ("the person who works at the {org}",),
    ("founded", "org", "founder"): ("the founder of the {org}", "the person who founded the {org}"),
    ("founded", "founder", "org"): ("organisation founded by {founder}",),
    ("located_in", "org", "city"): ("the town where the {org} is located",
                                    "the town where the {org} has its headquarters"),
    ("located_in", "city", "org"): ("organisation based in {city}",),
    ("river", "river", "city"): ("the town on the {river} river",),
    ("mayor", "city", "person"): ("the mayor of {city}", "the person who governs {city}"),
    ("mayor", "person", "city"): ("the town governed by {person}",),
}  # fmt: skip
