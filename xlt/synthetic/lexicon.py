"""Phonology and lexicon: the concept inventory and each language's romanised word forms.

The concept inventory (:data:`NOUN_CLASSES`, :data:`VERB_FRAMES`, :data:`ADJ_CLASSES`, adverbs, months,
:data:`ENTITY_POOLS` of shared names) is the same for every language. A :class:`_Lexicon` gives one
language a form for each concept, function word and bound morpheme: the source language's forms are
English-like pseudo-words; another language takes a seeded fraction ``overlap`` of them as cognates (the
source form through its sound changes and phonotactics, :meth:`_Lexicon._adapt`) and makes the rest from
its own phonology (:func:`_make_word`). Forms stay romanised here; the grammar transliterates them.
"""

from __future__ import annotations

import hashlib
import random

from xlt.synthetic.scripts import _VOWELS, _segment
from xlt.synthetic.specs import LanguageSpec

_PHONOLOGY: dict[str, tuple[list[str], list[str], list[str], dict[int, int]]] = {
    "english": ("b d f g h k l m n p r s t v w y j ch sh th br bl dr fr fl gr gl kr kl pr pl tr sk sl sm sn "
                "sp st sw - - -".split(), "a e i o u a e i o u ea oo ai ou".split(),
                "- - - - - n l r s t k m d p nd nt st rk rn ld lk mp ng sh th ft".split(),
                {1: 4, 2: 5, 3: 1}),
    "romance": ("b d f g l m n p r s t v ch br pr tr gr fl -".split(), "a e i o u a e o ia io".split(),
                "- - - - - - n r s l".split(), {2: 5, 3: 4, 4: 1}),
    "slavic": ("b d g k l m n p r s t v z zh ch sh st pr kr dr br sl sv gr tv -".split(),
               "a e i o u a o e".split(), "- - - k t v n l r m sh ch st sk".split(), {1: 2, 2: 5, 3: 3}),
    "turkic": ("b d g k l m n p r s t y ch sh j z - -".split(), "a e i o u a e i".split(),
               "- - - r l n k t m s z sh".split(), {2: 5, 3: 4, 4: 1}),
    "indic": ("b d g k l m n p r s t v y j ch sh kh gh th ph -".split(), "a a a e i o u".split(),
              "- - - - - n m r l t".split(), {2: 5, 3: 4}),
    "semitic": ("b d k l m n r s t z f h w y j sh kh gh th".split(), "a a i u a i".split(),
                "- - b d k l m n r s t f h sh kh".split(), {1: 2, 2: 5, 3: 2}),
    "dravidian": ("k t p m n v y l r s ch -".split(), "a a i u e o".split(), "- - - - - - n l m r".split(),
                  {2: 4, 3: 5, 4: 1}),
    "celtic": ("b d g k l m n p r s t w f h th gl gw br kr tr".split(), "a e i o u ae ei".split(),
               "- - - n r l th d dd s f ch".split(), {1: 3, 2: 5, 3: 2}),
    "names": ("b d k l m n p r s t v z j sh -".split(), "a e i o u a i".split(), "- - - - n r l s k".split(),
              {2: 6, 3: 4}),
}

#: Concept inventory: open classes with hundreds of lexemes each.
NOUN_CLASSES = {"animate": 130, "object": 220, "place": 80, "abstract": 100}
VERB_FRAMES = {"intr": 60, "perceive": 80, "make": 80, "give": 40}  # even sizes: 2k and 2k+1 are antonyms
ADJ_CLASSES = {"any": 120, "animate": 40, "object": 40}
N_ADVERBS = 60
N_MONTHS = 12
ENTITY_POOLS = {"first": 150, "last": 150, "city": 120, "org": 80}
_FUNCTION_WORDS = {
    "def": "the", "indef": "a", "dat": "to", "loc": "in", "time": "on", "past": "did", "fut": "will",
    "neg": "not", "and": "and", "but": "but", "who": "who", "what": "what", "where": "where", "when": "when",
    "howmany": "how many", "he": "he", "she": "she", "they": "they",
}
_ANALYTIC_FW = tuple(_FUNCTION_WORDS)
_AGGLUTINATIVE_FW = ("time", "and", "but", "who", "what", "where", "when", "howmany", "he", "she", "they")


def _unit_hash(*parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


_SIMPLE: dict[int, list[str]] = {}


def _simple(units: list[str]) -> list[str]:
    """The single-unit members of an onset or coda inventory (cached per inventory)."""
    out = _SIMPLE.get(id(units))
    if out is None:
        out = _SIMPLE[id(units)] = [u for u in units if u == "-" or len(_segment(u)) == 1]
    return out


def _make_word(rng: random.Random, phonology: str, syllables: int | None = None) -> str:
    """A native word: syllables from the inventory; clusters only at the word's edges."""
    onsets, vowels, codas, weights = _PHONOLOGY[phonology]
    if syllables is None:
        syllables = rng.choices(list(weights), weights=list(weights.values()))[0]
    parts = []
    closed = False
    for k in range(syllables):
        onset = rng.choice(_simple(onsets) if closed else onsets)
        coda = rng.choice(codas if k == syllables - 1 else _simple(codas))
        closed = coda != "-"
        parts.append(("" if onset == "-" else onset) + rng.choice(vowels) + ("" if coda == "-" else coda))
    return "".join(parts)


def _concept_keys() -> list[tuple]:
    keys: list[tuple] = []
    keys += [("n", cls, i) for cls, n in NOUN_CLASSES.items() for i in range(n)]
    keys += [("v", frame, i) for frame, n in VERB_FRAMES.items() for i in range(n)]
    keys += [("a", cls, i) for cls, n in ADJ_CLASSES.items() for i in range(n)]
    keys += [("adv", "", i) for i in range(N_ADVERBS)]
    keys += [("month", "", i) for i in range(N_MONTHS)]
    return keys


class _Lexicon:
    """Romanised forms of one language: content lexemes, function words, bound morphemes."""

    def __init__(self, spec: LanguageSpec, seed: int, source: _Lexicon | None) -> None:
        self.spec = spec
        self.forms: dict[tuple, str] = {}
        self.fw: dict[str, str] = {}
        self.suffixes = dict(spec.suffixes)
        self.cognates = 0
        rng = random.Random(f"{seed}/lexicon/{spec.code}")
        used: set[str] = set()
        if source is None:  # the source language: English-like pseudo-words, English function words
            self.fw = dict(_FUNCTION_WORDS)
            used.update(self.fw.values())
            for key in _concept_keys():
                self.forms[key] = self._fresh(rng, used, syllables=None)
            self.cognates = len(self.forms)  # the source is its own cognate
            return
        if spec.clone_of:
            self.forms, self.fw = dict(source.forms), dict(source.fw)
            self.cognates = len(self.forms)
            return
        taboo = set(source.forms.values())
        fw_names = _ANALYTIC_FW if spec.morphology == "analytic" else _AGGLUTINATIVE_FW
        for name in fw_names:
            if _unit_hash(seed, spec.code, "fw", name) < spec.overlap:
                form = " ".join(self._adapt(part) for part in source.fw[name].split())
                if form.strip() and form not in used:
                    self.fw[name] = form
                    used.add(form)
                    continue
            self.fw[name] = self._fresh(rng, used, syllables=1, taboo=taboo)
        for key in _concept_keys():
            if _unit_hash(seed, spec.code, *key) < spec.overlap:
                form = self._adapt(source.forms[key])
                if form and form not in used:
                    self.forms[key] = form
                    used.add(form)
                    self.cognates += 1
                    continue
            self.forms[key] = self._fresh(rng, used, syllables=None, taboo=taboo)

    def _fresh(self, rng: random.Random, used: set[str], syllables: int | None,
               taboo: set[str] | frozenset[str] = frozenset()) -> str:
        for attempt in range(200):
            form = _make_word(rng, self.spec.phonology, syllables if attempt < 100 else (syllables or 2) + 1)
            if form not in used and form not in taboo and len(form) > 1:
                used.add(form)
                return form
        raise RuntimeError(f"could not make a new word for {self.spec.code}")  # pragma: no cover

    def _adapt(self, word: str) -> str:
        """A cognate: the source word through this language's sound changes and phonotactics."""
        spec = self.spec
        subs = dict(spec.subs)
        units: list[str] = []
        for unit in _segment(word):
            units.extend(_segment(subs.get(unit, unit)))
        if spec.epenthesis:
            broken: list[str] = []
            for unit in units:
                prev = broken[-1] if broken else "a"
                if unit not in _VOWELS and prev not in _VOWELS and prev not in spec.finals:
                    broken.append(spec.epenthesis)
                broken.append(unit)
            units = broken
        if spec.final_vowel and units and units[-1] not in _VOWELS and units[-1] not in spec.finals:
            units.append(spec.final_vowel)
        return "".join(units)
