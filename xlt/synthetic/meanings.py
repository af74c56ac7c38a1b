"""Meaning structures and the meaning sampler: what a sentence says, before any language realises it.

A :class:`Sentence` is one or two :class:`Clause` objects (a predicate with its frame, agent / patient /
recipient :class:`NP`, location, :class:`Date`, manner adverb, negation, tense). Meanings are
language-independent: the same meaning realised by every language gives parallel data. :class:`_Sampler`
draws meanings with Zipfian lexeme frequencies (:func:`_zipf`) and selectional restrictions, with the
probabilities of a named profile (:data:`_PROFILES`: ``mlm``, ``ud``, ``ner``, ``simple``, ``rich``).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from xlt.synthetic.lexicon import ADJ_CLASSES, ENTITY_POOLS, N_ADVERBS, N_MONTHS, NOUN_CLASSES, VERB_FRAMES


@dataclass(slots=True)
class NP:
    """A noun phrase meaning.

    Attributes:
        kind: ``noun``, ``per``, ``org``, ``loc`` or ``pron``.
        lex: noun index within ``cls`` / entity index / pronoun index (0 he, 1 she, 2 they).
        cls: noun class (``animate``, ``object``, ``place``, ``abstract``) for common nouns.
        last: surname index of a person (-1: first name only).
        adjs: adjective concept keys.
        plural: number.
        definite: definiteness (articles in analytic languages).
        count: a numeral (digits), or None.
    """

    kind: str
    lex: int
    cls: str = ""
    last: int = -1
    adjs: tuple[tuple, ...] = ()
    plural: bool = False
    definite: bool = True
    count: int | None = None

    @property
    def animate(self) -> bool:
        return self.kind in ("per", "pron", "org") or self.cls == "animate"

    @property
    def is_entity(self) -> bool:
        return self.kind in ("per", "org", "loc")


@dataclass(slots=True)
class Date:
    """A date: year, optionally month (0-11) and day."""

    year: int
    month: int | None = None
    day: int | None = None


@dataclass(slots=True)
class Clause:
    """A predication: verb ``(frame, index)`` with its arguments and modifiers."""

    verb: tuple[str, int]
    agent: NP
    tense: str = "past"
    negated: bool = False
    patient: NP | None = None
    recipient: NP | None = None
    location: NP | None = None
    time: Date | None = None
    manner: int | None = None


@dataclass(slots=True)
class Sentence:
    """One or two clauses (coordinated by ``and``/``but``); ``front`` topicalises an adjunct."""

    clauses: tuple[Clause, ...]
    conj: str = "and"
    front: str | None = None


def _zipf(n: int, exponent: float = 1.05) -> list[float]:
    return list(accumulate(1.0 / (rank + 1) ** exponent for rank in range(n)))


_PROFILES = {
    # entity: P(entity NP where allowed); loc/time/manner/neg/conj/question probabilities
    "mlm": dict(entity=0.3, loc=0.35, time=0.25, manner=0.15, neg=0.15, conj=0.15, question=0.05),
    "ud": dict(entity=0.3, loc=0.35, time=0.25, manner=0.15, neg=0.15, conj=0.15, question=0.0),
    "ner": dict(entity=0.65, loc=0.5, time=0.4, manner=0.1, neg=0.1, conj=0.15, question=0.0),
    "simple": dict(entity=0.4, loc=0.3, time=0.2, manner=0.1, neg=0.15, conj=0.0, question=0.0),
    "rich": dict(entity=0.5, loc=0.6, time=0.5, manner=0.3, neg=0.0, conj=0.0, question=0.0),
}


_FRAMES, _FRAME_CW = ("intr", "perceive", "make", "give"), (2, 5, 8, 10)
_TENSES, _TENSE_CW = ("past", "present", "future"), (4, 7.5, 10)


class _Sampler:
    """Draws meanings with Zipfian lexeme frequencies and selectional restrictions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cw = {("n", c): _zipf(n) for c, n in NOUN_CLASSES.items()}
        self.cw.update({("v", f): _zipf(n) for f, n in VERB_FRAMES.items()})
        self.cw.update({("a", c): _zipf(n) for c, n in ADJ_CLASSES.items()})
        self.cw.update({("adv", ""): _zipf(N_ADVERBS)})
        self.cw.update({(k, ""): _zipf(n, 0.8) for k, n in ENTITY_POOLS.items()})

    def pick(self, kind: str, cls: str = "") -> int:
        cw = self.cw[(kind, cls)]
        return bisect_right(cw, self.rng.random() * cw[-1])

    def _below(self, n: int) -> int:
        return int(self.rng.random() * n)

    def adjectives(self, cls: str, k: int) -> tuple[tuple, ...]:
        if k == 0:
            return ()
        classes = ("any", cls) if cls in ("animate", "object") else ("any",)
        out: list[tuple] = []
        while len(out) < k:
            acls = classes[self._below(len(classes))]
            key = ("a", acls, self.pick("a", acls))
            if key not in out:
                out.append(key)
        return tuple(out)

    def entity(self, kind: str) -> NP:
        r = self.rng
        if kind == "per":
            return NP("per", self.pick("first"), last=self.pick("last") if r.random() < 0.75 else -1)
        return NP(kind, self.pick("city" if kind == "loc" else "org"))

    def noun(self, cls: str, adj_p: float = 0.4) -> NP:
        random_ = self.rng.random
        k = 0 if random_() > adj_p else (1 if random_() < 0.75 else 2)
        plural = random_() < 0.3
        count = None
        if plural and random_() < 0.35:
            count = 2 + self._below(11) if random_() < 0.7 else 13 + self._below(987)
        adjs = self.adjectives(cls, k)
        return NP("noun", self.pick("n", cls), cls, -1, adjs, plural, random_() < 0.6, count)

    def agent(self, p: dict, allow_org: bool = True) -> NP:
        r = self.rng.random()
        if r < p["entity"]:
            return self.entity("org" if allow_org and self.rng.random() < 0.2 else "per")
        if r < p["entity"] + 0.08:
            lex = self._below(3)
            return NP("pron", lex, plural=lex == 2)
        return self.noun("animate")

    def location(self, p: dict) -> NP:
        return self.entity("loc") if self.rng.random() < max(p["entity"], 0.4) else self.noun("place", 0.25)

    def date(self) -> Date:
        r = self.rng
        year = 1890 + self._below(141)
        shape = r.random()
        if shape < 0.35:
            return Date(year)
        if shape < 0.6:
            return Date(year, self._below(N_MONTHS))
        return Date(year, self._below(N_MONTHS), 1 + self._below(28))

    def clause(self, p: dict) -> Clause:
        r = self.rng
        frame = _FRAMES[bisect_right(_FRAME_CW, r.random() * _FRAME_CW[-1])]
        verb = (frame, self.pick("v", frame))
        patient = recipient = None
        agent = self.agent(p, allow_org=frame != "perceive")
        if frame == "perceive":
            x = r.random()
            if x < p["entity"] * 0.6:
                patient = self.entity(("per", "per", "org", "loc")[self._below(4)])
            else:
                patient = self.noun(("animate", "object", "object", "place", "abstract")[self._below(5)])
        elif frame in ("make", "give"):
            patient = self.noun("object")
        if frame == "give":
            recipient = self.entity("per") if r.random() < p["entity"] else self.noun("animate", 0.25)
        loc_p = p["loc"] + 0.3 if frame == "intr" else p["loc"]
        location = self.location(p) if r.random() < loc_p else None
        time_ = self.date() if r.random() < p["time"] else None
        manner = self.pick("adv") if r.random() < p["manner"] else None
        tense = _TENSES[bisect_right(_TENSE_CW, r.random() * _TENSE_CW[-1])]
        return Clause(verb, agent, tense, r.random() < p["neg"], patient, recipient, location, time_, manner)

    def sentence(self, profile: str) -> Sentence:
        p = _PROFILES[profile]
        first = self.clause(p)
        if self.rng.random() < p["conj"]:
            return Sentence((first, self.clause(p)), conj="and" if self.rng.random() < 0.7 else "but")
        return Sentence((first,))
