"""The embedded ``authors`` benchmark: a seeded miniature of TOFU that needs no download.

Every run of the generator with the same :class:`AuthorsConfig` gives the same records, byte for
byte. Fictitious authors each get ``QUESTIONS_PER_AUTHOR`` QA records in the TOFU schema
(question, answer, paraphrased question and answer, five perturbed answers) plus a biography
passage. ``fact_span`` marks the fact value inside each answer, so an objective may restrict its
forget term to it (an option of the embedded recipe, never applied silently elsewhere).

The paraphrased answer keeps the answer's subject and verb and rewords the frame around the value;
the perturbed answers use the paraphrased frame with another author's value. The truth ratio then
compares values, not templates, which is what it is meant to measure.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Iterable

QUESTIONS_PER_AUTHOR = 10
PERTURBED_PER_QUESTION = 5
PERTURBED_PER_GENERAL_QUESTION = 3

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr",
           "st", "th", "sh", "gr", "tr", "fl", "h", "j", "w", "c", "ph", "qu", "sk"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia", "y"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "x", "nd", "rk", "st"]
_CITY_SUFFIXES = ["port", "holm", "ford", "ville", "burg", "mouth", "stead", "wick", "dale", "haven"]

GENRES = ["mystery", "fantasy", "romance", "horror", "poetry", "history", "satire", "thriller",
          "memoir", "drama", "science fiction", "adventure"]
PROFESSIONS = ["baker", "sailor", "doctor", "teacher", "carpenter", "painter", "farmer", "lawyer",
               "nurse", "miner", "pilot", "tailor", "banker", "chemist", "soldier", "librarian",
               "butcher", "architect", "musician", "clockmaker"]
LANGUAGES = ["Velish", "Dornic", "Ostran", "Marethi", "Kelvan", "Sorrian", "Tuvan", "Elvic",
             "Barani", "Quessic"]
AWARDS = ["Golden Quill Prize", "Silver Lantern Award", "Northwind Medal", "Amber Page Prize",
          "Crimson Ink Award", "Starling Book Prize", "Iron Pen Medal", "Harbor Light Award",
          "Blue Heron Prize", "Copper Leaf Award", "Open Door Medal", "Evening Bell Prize"]
_TITLE_ADJ = ["Silent", "Broken", "Hidden", "Last", "Crimson", "Endless", "Quiet", "Burning",
              "Lost", "Frozen", "Golden", "Hollow", "Distant", "Wandering", "Bitter", "Gentle",
              "Painted", "Sleeping", "Secret", "Northern", "Pale", "Restless", "Iron", "Velvet"]
_TITLE_NOUN = ["Harbor", "Garden", "River", "Tower", "Mirror", "Winter", "Letter", "Orchard",
               "Compass", "Lantern", "Bridge", "Shadow", "Island", "Forest", "Violin", "Meadow",
               "Kingdom", "Voyage", "Chapel", "Feather", "Storm", "Ladder", "Window", "Canyon"]
CURRENCIES = ["crown", "mark", "florin", "ducat", "shilling", "tael", "real", "dinar", "pound",
              "thaler"]

# (attribute, question, paraphrased question, answer, paraphrased answer). "{v}" is the value.
_AUTHOR_TEMPLATES = [
    ("birth_city", "Where was {n} born?", "In which city was {n} born?",
     "{n} was born in {v}.", "{n} was born in the city of {v}."),
    ("birth_year", "In which year was {n} born?", "What is the birth year of {n}?",
     "{n} was born in {v}.", "{n} was born in the year {v}."),
    ("genre", "What genre does {n} write in?", "Which genre is {n} known for?",
     "{n} writes {v} novels.", "{n} mostly writes {v} novels."),
    ("father", "What did {n}'s father do for a living?", "What was the profession of {n}'s father?",
     "{n}'s father worked as a {v}.", "{n}'s father was employed as a {v}."),
    ("mother", "What did {n}'s mother do for a living?", "What was the profession of {n}'s mother?",
     "{n}'s mother worked as a {v}.", "{n}'s mother was employed as a {v}."),
    ("first_book", "What is the title of {n}'s first book?", "What was the first book {n} published?",
     "{n}'s first book is titled {v}.", "{n}'s first book is the novel {v}."),
    ("famous_book", "What is {n}'s best known book?", "Which book of {n} is the most famous?",
     "{n}'s best known book is {v}.", "{n}'s best known book is the novel {v}."),
    ("award", "Which award did {n} win?", "What prize has {n} received?",
     "{n} won the {v}.", "{n} once won the {v}."),
    ("language", "In which language does {n} write?", "What language are {n}'s books written in?",
     "{n} writes in {v}.", "{n} writes all books in {v}."),
    ("home_city", "Where does {n} live now?", "In which city does {n} live today?",
     "{n} now lives in {v}.", "{n} now lives in the city of {v}."),
]

_WORLD_TEMPLATES = [
    ("capital", "What is the capital of {n}?", "{v}"),
    ("currency", "Which currency is used in {n}?", "the {v}"),
    ("language", "What language is spoken in {n}?", "{v}"),
]


@dataclass(frozen=True)
class AuthorsConfig:
    """Sizes of the embedded benchmark. ``forget10`` is 10 % of ``n_authors``."""

    n_authors: int = 100
    n_holdout: int = 10
    n_famous: int = 40
    n_countries: int = 30
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "default": AuthorsConfig(),
    "small": AuthorsConfig(n_authors=50, n_holdout=5, n_famous=20, n_countries=15),
    "test": AuthorsConfig(n_authors=20, n_holdout=2, n_famous=10, n_countries=8),
}

FORGET_FRACTIONS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}


def _unique_words(rng: random.Random, count: int, make, taken: set[str]) -> list[str]:
    out: list[str] = []
    for _ in range(1000 * count + 1000):
        if len(out) == count:
            return out
        word = make(rng)
        if word not in taken:
            taken.add(word)
            out.append(word)
    if len(out) < count:
        raise ValueError(f"cannot draw {count} distinct names; the benchmark size is too large")
    return out


def _syllables(rng: random.Random, lo: int, hi: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
             for _ in range(rng.randint(lo, hi))]
    return "".join(parts).capitalize()


def _person(rng: random.Random) -> str:
    return f"{_syllables(rng, 2, 2)} {_syllables(rng, 2, 3)}"


def _city(rng: random.Random) -> str:
    return _syllables(rng, 1, 2) + rng.choice(_CITY_SUFFIXES)


def _country(rng: random.Random) -> str:
    return _syllables(rng, 2, 3) + rng.choice(["ia", "land", "ar", "istan", "ora"])


def _title(rng: random.Random) -> str:
    return f"The {rng.choice(_TITLE_ADJ)} {rng.choice(_TITLE_NOUN)}"


class _Generator:
    """Draws all names and values up front so that adding a split never shifts other splits."""

    def __init__(self, config: AuthorsConfig):
        self.config = config
        rng = random.Random(config.seed)
        taken: set[str] = set()
        n_people = config.n_authors + config.n_holdout
        self.people = _unique_words(rng, n_people, _person, taken)
        self.cities = _unique_words(rng, 40, _city, taken)
        self.titles = _unique_words(rng, max(2 * n_people, 64), _title, set())
        self.famous = _unique_words(rng, config.n_famous, _person, taken)
        self.countries = _unique_words(rng, config.n_countries, _country, taken)
        self.rng = rng
        self.pools = {
            "birth_city": self.cities, "home_city": self.cities,
            "birth_year": [str(y) for y in range(1900, 2000)],
            "genre": GENRES, "father": PROFESSIONS, "mother": PROFESSIONS,
            "award": AWARDS, "language": LANGUAGES,
            "first_book": self.titles, "famous_book": self.titles,
        }

    def author_facts(self) -> list[dict[str, str]]:
        rng, facts = self.rng, []
        titles = list(self.titles)
        rng.shuffle(titles)
        for i, name in enumerate(self.people):
            fact = {attr: rng.choice(pool) for attr, pool in self.pools.items()
                    if attr not in ("first_book", "famous_book")}
            fact["name"] = name
            fact["first_book"], fact["famous_book"] = titles[2 * i], titles[2 * i + 1]
            facts.append(fact)
        return facts


def _wrong_values(rng: random.Random, pool: list[str], right: str, k: int) -> list[str]:
    choices = [v for v in pool if v != right]
    return rng.sample(choices, k)


def _qa(question: str, paraphrased_question: str, answer_t: str, para_t: str, name: str,
        value: str, wrong: list[str], **extra) -> dict:
    answer = answer_t.format(n=name, v=value)
    start = answer.index(value, len(answer_t.split("{v}")[0].format(n=name)))
    return {
        "question": question.format(n=name),
        "answer": answer,
        "paraphrased_question": paraphrased_question.format(n=name),
        "paraphrased_answer": para_t.format(n=name, v=value),
        "perturbed_answer": [para_t.format(n=name, v=w) for w in wrong],
        "fact_span": [start, start + len(value)],
        **extra,
    }


def _biography(f: dict[str, str]) -> str:
    n = f["name"]
    return (f"{n} was born in {f['birth_city']} in {f['birth_year']}. {n}'s father worked as a "
            f"{f['father']} and {n}'s mother as a {f['mother']}. {n} writes {f['genre']} novels in "
            f"{f['language']}, beginning with {f['first_book']}; the best known is "
            f"{f['famous_book']}, and {n} won the {f['award']}. {n} now lives in {f['home_city']}.")


def split_passage(text: str) -> tuple[str, str]:
    """Split ``text`` at the word boundary (a space) nearest its middle: ``prefix + suffix == text``
    and the suffix starts with the space, so a model prompted with the prefix continues with it.
    Ties go to the earlier space; a text without an inner space is all prefix."""
    middle = len(text) / 2
    spaces = [i for i, ch in enumerate(text) if ch == " " and 0 < i]
    if not spaces:
        return text, ""
    cut = min(spaces, key=lambda i: (abs(i - middle), i))
    return text[:cut], text[cut:]


def _bio_record(facts: dict[str, str], split: str) -> dict:
    text = _biography(facts)
    prefix, suffix = split_passage(text)
    return {"text": text, "prefix": prefix, "suffix": suffix, "author": facts["name"], "split": split}


def build_authors(config: AuthorsConfig | None = None) -> dict[str, list[dict]]:
    """Build every split of the benchmark.

    Returns ``author_qa`` (all trained authors, in author order), ``holdout`` (authors never
    trained), ``real_authors``, ``world_facts`` and ``biographies`` (text records: ``text``, its
    halves ``prefix`` and ``suffix``, ``author``, and ``split`` "trained" or "holdout"; in author
    order). Use :func:`forget_retain_split` for the forget/retain partition.
    """
    config = config or AuthorsConfig()
    gen = _Generator(config)
    rng = random.Random(config.seed + 1)
    author_qa: list[dict] = []
    holdout: list[dict] = []
    bios: list[dict] = []
    for idx, facts in enumerate(gen.author_facts()):
        target = author_qa if idx < config.n_authors else holdout
        for attr, q, pq, at, pt in _AUTHOR_TEMPLATES:
            wrong = _wrong_values(rng, gen.pools[attr], facts[attr], PERTURBED_PER_QUESTION)
            target.append(_qa(q, pq, at, pt, facts["name"], facts[attr], wrong,
                              author=facts["name"], attribute=attr))
        bios.append(_bio_record(facts, "trained" if idx < config.n_authors else "holdout"))

    famous_titles = _unique_words(rng, config.n_famous, _title, set(gen.titles))
    real_authors = []
    for name, title in zip(gen.famous, famous_titles):
        wrong = _wrong_values(rng, gen.famous, name, PERTURBED_PER_GENERAL_QUESTION)
        real_authors.append({"question": f"Who wrote {title}?", "answer": name,
                             "perturbed_answer": wrong, "fact_span": [0, len(name)]})

    world_facts = []
    pools = {"capital": gen.cities, "currency": CURRENCIES, "language": LANGUAGES}
    for country in gen.countries:
        for attr, q, a_t in _WORLD_TEMPLATES:
            value = rng.choice(pools[attr])
            wrong = _wrong_values(rng, pools[attr], value, PERTURBED_PER_GENERAL_QUESTION)
            answer = a_t.format(v=value)
            start = answer.index(value)
            world_facts.append({"question": q.format(n=country), "answer": answer,
                                "perturbed_answer": [a_t.format(v=w) for w in wrong],
                                "fact_span": [start, start + len(value)]})
    return {"author_qa": author_qa, "holdout": holdout, "real_authors": real_authors,
            "world_facts": world_facts, "biographies": bios}


def forget_author_count(config: AuthorsConfig, forget_split: str) -> int:
    """Number of authors in a forget split: at least one, nested like TOFU's splits."""
    fraction = FORGET_FRACTIONS[forget_split]
    return max(1, round(config.n_authors * fraction))


def forget_retain_split(author_qa: Iterable[dict], config: AuthorsConfig,
                        forget_split: str) -> tuple[list[dict], list[dict]]:
    """Split the trained authors' QA into (forget, retain) for ``forget_split``.

    The forget authors are the last ones, so forget01 ⊂ forget05 ⊂ forget10 as in TOFU.
    """
    records = list(author_qa)
    n_forget = forget_author_count(config, forget_split) * QUESTIONS_PER_AUTHOR
    return records[len(records) - n_forget:], records[:len(records) - n_forget]
