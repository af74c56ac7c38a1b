"""The synthetic language panel: seeded controlled languages with gold data for six tasks.

This is the controlled-language method of K et al. (2020) and Dufter & Schütze (2020). Every sentence
starts as a language-independent *meaning* (:class:`Sentence` of :class:`Clause` objects: a predicate with a
frame, agent / patient / recipient noun phrases, location, date, manner adverb, negation, tense; named
entities and numbers). A meaning is then *realised* by each language's grammar (:class:`LanguageSpec`):

* **script** — every word is built in a romanised form and transliterated deterministically into
  Latin, Cyrillic, Greek, Devanagari (abugida with vowel signs and virama), Tamil (with pulli) or Arabic
  (matres lectionis, Eastern Arabic digits); sentence-initial and proper-noun capitals in cased scripts;
* **word order** — SVO / SOV / VSO clauses, prepositions or postpositions, adjectives before or after
  the noun; wh-questions front the wh-phrase except in SOV languages (wh in situ);
* **morphology** — *analytic* languages use articles, adpositions and tense/negation particles;
  *agglutinative* ones stack plural, case, negation, tense and agreement suffixes (with vowel harmony
  where the spec says so) and mark case on proper names with a separate particle;
* **lexical overlap** — a seeded fraction ``overlap`` of lexemes are cognates of the source word (the
  source form adapted by the language's sound changes and phonotactics); the rest are native words from
  the language's own phonology. Named entities and numbers are shared by all languages (transliterated);
* **resource bucket** — the size of the MLM corpus (:data:`BUCKET_SENTENCES` times ``scale``).

``qai`` and ``qaj`` are controlled copies of the source ``qaa`` that differ from it in one factor only
(script; word order), in the spirit of K et al.'s "Fake-English".

Because the meaning is shared, every realisation carries gold annotations: UPOS, dependency trees, IOB2
entity tags and answer spans; and meaning-level operations give labelled pairs (NLI: dropping or adding
a modifier under the premise's polarity, negation, antonyms, changed arguments; PAWS: fronting and
adjective reordering vs. swapped roles). :func:`generate_panel` writes everything in the real formats
that :mod:`xlt.datamodules.readers` parses::

    panel.yaml                                    the panel (== configs/panels/synthetic.yaml)
    manifest.json                                 seed, scale, generator version, counts per file
    mlm/<code>.txt                                one sentence per line (independent meanings per language)
    ud/<code>/{train,dev,test}.conllu             CoNLL-U (LEMMA, UPOS, FEATS, HEAD, DEPREL, SpaceAfter)
    ner/<code>/{train,dev,test}.txt               ``token TAG`` IOB2 with PER / ORG / LOC / DATE
    xnli/<code>/{train,dev,test}.tsv              header ``premise hypothesis label``
    pawsx/<code>/{train,dev,test}.tsv             header ``id sentence1 sentence2 label``
    qa/<code>/{train,dev,test}.json               SQuAD v1.1 (question ids shared across languages)
    tatoeba/tatoeba.<code>-qaa.{<code>,qaa}       line-aligned with the source; line i = meaning i

Task files are parallel across languages (line / example i realises the same meaning everywhere, like
XNLI, PAWS-X and XQuAD test sets); MLM text is not. Output is a pure function of ``(seed, scale)``.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import random
import time
from bisect import bisect_right
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from xlt.atomic import atomic_dir
from xlt.errors import XltError
from xlt.languages import Language, Panel, save_panel

__all__ = [
    "BUCKET_SENTENCES", "GENERATOR_VERSION", "SOURCE", "SPECS", "TASK_SIZES", "Clause", "Date",
    "LanguageSpec", "NP", "Realisation", "Sentence", "World", "generate_panel", "synth", "synthetic_panel",
    "tatoeba_meanings", "transliterate",
]

GENERATOR_VERSION = "1"
SOURCE = "qaa"
#: MLM sentences per resource bucket at ``scale=1.0``.
BUCKET_SENTENCES = {"high": 20000, "mid": 8000, "low": 3000, "tail": 1000}
#: Examples per split of every task file at ``scale=1.0`` (questions for QA, pairs for NLI/PAWS-X).
TASK_SIZES = {"train": 600, "dev": 150, "test": 150}
TATOEBA_SIZE = 1000
MIN_EVAL_EXAMPLES = 20
MIN_MLM_LINES = 10
SPLITS = ("train", "dev", "test")
NLI_LABELS = ("entailment", "neutral", "contradiction")

# --------------------------------------------------------------------------------------------------
# Language specifications
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageSpec:
    """Parameters of one synthetic language.

    Attributes:
        code: ISO 639-3 private-use code (``qaa``..``qtz``).
        name: invented language name.
        family: group used for reporting (``family.<name>``).
        script: writing system the romanised forms are transliterated into.
        bucket: resource bucket (MLM corpus size).
        word_order: ``SVO``, ``SOV`` or ``VSO``.
        adposition: ``pre`` (prepositions, head-initial) or ``post`` (postpositions, head-final).
        adjective_order: ``before`` or ``after`` the noun.
        morphology: ``analytic`` (particles, articles) or ``agglutinative`` (suffix chains).
        overlap: fraction of lexemes that are cognates of the source-language word.
        phonology: syllable inventory of native words (a key of the phonology table).
        subs: sound changes applied to cognates, romanised unit -> replacement.
        epenthesis: vowel inserted to break consonant clusters in cognates (``""``: clusters allowed).
        final_vowel: vowel appended to cognates ending in a consonant not in ``finals``.
        finals: consonants allowed word-finally in cognates when ``final_vowel`` is set.
        suffixes: bound morphemes (pl, acc, dat, loc, past, fut, neg, agr); ``A``/``I`` harmonise.
        harmony: whether suffix vowels ``A``/``I`` follow the stem's last vowel (front/back).
        neg_prefix: negation is a verb prefix rather than a suffix.
        orthography: Latin-script spelling of romanised units (``sh`` -> ``ş``).
        clone_of: this language copies the lexicon and morphemes of another one exactly.
        note: what the language controls for.
    """

    code: str
    name: str
    family: str
    script: str
    bucket: str
    word_order: str
    adposition: str
    adjective_order: str
    morphology: str
    overlap: float
    phonology: str
    subs: tuple[tuple[str, str], ...] = ()
    epenthesis: str = ""
    final_vowel: str = ""
    finals: str = ""
    suffixes: tuple[tuple[str, str], ...] = ()
    harmony: bool = False
    neg_prefix: bool = False
    orthography: tuple[tuple[str, str], ...] = ()
    clone_of: str = ""
    note: str = ""

    @property
    def head_final(self) -> bool:
        return self.adposition == "post"

    def features(self) -> dict[str, str]:
        """The typological parameters as panel ``features``."""
        feats = {
            "word_order": self.word_order, "adposition": self.adposition,
            "adjective_order": self.adjective_order, "morphology": self.morphology,
            "overlap": f"{self.overlap:.2f}", "phonology": self.phonology, "cognate_source": SOURCE,
        }
        if self.clone_of:
            feats["clone_of"] = self.clone_of
        if self.note:
            feats["controls"] = self.note
        return feats


_ENGLISH_SUFFIXES = (("pl", "s"),)
SPECS: tuple[LanguageSpec, ...] = (
    LanguageSpec("qaa", "Anglish", "Anglic", "Latin", "high", "SVO", "pre", "before", "analytic", 1.0,
                 "english", suffixes=_ENGLISH_SUFFIXES, note="source language"),
    LanguageSpec("qab", "Romanse", "Romanic", "Latin", "high", "SVO", "pre", "after", "analytic", 0.6,
                 "romance", subs=(("th", "t"), ("w", "v"), ("sh", "s"), ("h", ""), ("kh", "k")),
                 final_vowel="o", finals="nrsl", suffixes=(("pl", "s"),),
                 note="adjective order; partial overlap"),
    LanguageSpec("qac", "Slavenik", "Slavonic", "Cyrillic", "mid", "SVO", "pre", "before", "agglutinative",
                 0.5, "slavic", subs=(("w", "v"), ("th", "t"), ("j", "zh"), ("h", "kh")),
                 suffixes=(("pl", "i"), ("acc", "u"), ("dat", "ovi"), ("loc", "e"), ("past", "al"),
                           ("fut", "it"), ("neg", "ne"), ("agr", "ut")), neg_prefix=True,
                 note="script and morphology"),
    LanguageSpec("qad", "Turkan", "Turkic", "Latin", "mid", "SOV", "post", "before", "agglutinative", 0.3,
                 "turkic", subs=(("w", "v"), ("th", "t"), ("kh", "k"), ("zh", "j")), epenthesis="i",
                 suffixes=(("pl", "lAr"), ("acc", "I"), ("dat", "A"), ("loc", "dA"), ("past", "dI"),
                           ("fut", "AjAk"), ("neg", "mA"), ("agr", "lAr")), harmony=True,
                 orthography=(("sh", "ş"), ("ch", "ç"), ("j", "c"), ("zh", "j")),
                 note="word order and morphology, same script"),
    LanguageSpec("qae", "Hindavi", "Indic", "Devanagari", "mid", "SOV", "post", "before", "agglutinative",
                 0.4, "indic", subs=(("w", "v"), ("z", "j"), ("f", "ph"), ("zh", "j")),
                 suffixes=(("pl", "on"), ("acc", "ko"), ("dat", "ke"), ("loc", "me"), ("past", "ya"),
                           ("fut", "ega"), ("neg", "na"), ("agr", "en")),
                 note="Brahmic script, head-final"),
    LanguageSpec("qaf", "Samiri", "Semitic", "Arabic", "low", "VSO", "pre", "after", "analytic", 0.2,
                 "semitic", subs=(("p", "b"), ("v", "f"), ("o", "u"), ("e", "i"), ("g", "gh"), ("ch", "sh")),
                 suffixes=(("pl", "at"),), note="Arabic script, verb-initial"),
    LanguageSpec("qag", "Tamilar", "Dravidic", "Tamil", "low", "SOV", "post", "before", "agglutinative", 0.1,
                 "dravidian", subs=(("b", "p"), ("d", "t"), ("g", "k"), ("f", "p"), ("z", "s"), ("sh", "s"),
                                    ("h", "k"), ("th", "t"), ("w", "v"), ("kh", "k"), ("gh", "k")),
                 epenthesis="u", final_vowel="u", finals="nlmr",
                 suffixes=(("pl", "kal"), ("acc", "ai"), ("dat", "ukku"), ("loc", "il"), ("past", "tan"),
                           ("fut", "van"), ("neg", "ala"), ("agr", "arkal")),
                 note="Brahmic script, low overlap"),
    LanguageSpec("qah", "Kymraig", "Brythonic", "Latin", "tail", "VSO", "pre", "after", "analytic", 0.0,
                 "celtic", suffixes=(("pl", "au"),), note="no cognates, same script"),
    LanguageSpec("qai", "Greek Anglish", "Anglic", "Greek", "low", "SVO", "pre", "before", "analytic", 1.0,
                 "english", suffixes=_ENGLISH_SUFFIXES, clone_of="qaa", note="script only (copy of qaa)"),
    LanguageSpec("qaj", "Verb-final Anglish", "Anglic", "Latin", "tail", "SOV", "post", "before", "analytic",
                 1.0, "english", suffixes=_ENGLISH_SUFFIXES, clone_of="qaa",
                 note="word order only (copy of qaa)"),
)
_SPEC_BY_CODE = {spec.code: spec for spec in SPECS}


def synthetic_panel() -> Panel:
    """The synthetic panel: what ``panel.yaml`` and ``configs/panels/synthetic.yaml`` hold."""
    languages = tuple(
        Language(code=s.code, name=s.name, family=s.family, script=s.script, bucket=s.bucket,
                 features=s.features())
        for s in SPECS
    )
    sizes = ", ".join(f"{b} {n}" for b, n in BUCKET_SENTENCES.items())
    return Panel(
        name="synthetic",
        languages=languages,
        source=("xlt synthetic generator (xlt.datamodules.synthetic; controlled languages after "
                f"K et al. 2020 and Dufter & Schuetze 2020). MLM sentences per bucket at scale 1: {sizes}."),
    )


# --------------------------------------------------------------------------------------------------
# Romanised units and transliteration
# --------------------------------------------------------------------------------------------------

_DIGRAPHS = frozenset({"zh", "ch", "sh", "th", "kh", "gh", "ng", "ph"})
_VOWELS = frozenset("aeiou")
_CASED = frozenset({"Latin", "Cyrillic", "Greek"})


def _segment(word: str) -> list[str]:
    """Split a romanised word into units (greedy digraphs)."""
    units = []
    i = 0
    while i < len(word):
        if word[i:i + 2] in _DIGRAPHS:
            units.append(word[i:i + 2])
            i += 2
        else:
            units.append(word[i])
            i += 1
    return units


_CYRILLIC = {
    "a": "а", "e": "е", "i": "и", "o": "о", "u": "у", "p": "п", "b": "б", "t": "т", "d": "д", "k": "к",
    "g": "г", "m": "м", "n": "н", "s": "с", "z": "з", "f": "ф", "v": "в", "h": "х", "l": "л", "r": "р",
    "w": "в", "y": "й", "j": "дж", "ch": "ч", "sh": "ш", "th": "т", "kh": "х", "gh": "г", "ng": "нг",
    "zh": "ж", "ph": "ф",
}
_CYRILLIC_Y = {"a": "я", "u": "ю", "o": "ё"}
_GREEK = {
    "a": "α", "e": "ε", "i": "ι", "o": "ο", "u": "ου", "p": "π", "b": "μπ", "t": "τ", "d": "ντ", "k": "κ",
    "g": "γκ", "m": "μ", "n": "ν", "s": "σ", "z": "ζ", "f": "φ", "v": "β", "h": "χ", "l": "λ", "r": "ρ",
    "w": "ου", "y": "γι", "j": "τζ", "ch": "τσ", "sh": "σ", "th": "θ", "kh": "χ", "gh": "γ", "ng": "γγ",
    "zh": "ζ", "ph": "φ",
}
_DEVANAGARI_C = {
    "p": "प", "b": "ब", "t": "त", "d": "द", "k": "क", "g": "ग", "m": "म", "n": "न", "s": "स",
    "z": "ज\u093c", "f": "फ\u093c", "v": "व", "h": "ह", "l": "ल", "r": "र", "w": "व", "y": "य", "j": "ज",
    "ch": "च", "sh": "श", "th": "थ", "kh": "ख", "gh": "घ", "ng": "ङ", "zh": "झ", "ph": "फ",
}
_DEVANAGARI_V = {"a": "अ", "e": "ए", "i": "इ", "o": "ओ", "u": "उ"}
_DEVANAGARI_M = {"a": "", "e": "\u0947", "i": "\u093f", "o": "\u094b", "u": "\u0941"}
_TAMIL_C = {
    "p": "ப", "b": "ப", "t": "த", "d": "ட", "k": "க", "g": "க", "m": "ம", "n": "ந", "s": "ச", "z": "ஜ",
    "f": "ஃப", "v": "வ", "h": "ஹ", "l": "ல", "r": "ர", "w": "வ", "y": "ய", "j": "ஜ", "ch": "ச", "sh": "ஷ",
    "th": "த", "kh": "க", "gh": "க", "ng": "ங", "zh": "ழ", "ph": "ப",
}
_TAMIL_V = {"a": "அ", "e": "எ", "i": "இ", "o": "ஒ", "u": "உ"}
_TAMIL_M = {"a": "", "e": "\u0bc6", "i": "\u0bbf", "o": "\u0bca", "u": "\u0bc1"}
_ARABIC_C = {
    "p": "ب", "b": "ب", "t": "ت", "d": "د", "k": "ك", "g": "غ", "m": "م", "n": "ن", "s": "س", "z": "ز",
    "f": "ف", "v": "ف", "h": "ه", "l": "ل", "r": "ر", "w": "و", "y": "ي", "j": "ج", "ch": "تش", "sh": "ش",
    "th": "ث", "kh": "خ", "gh": "غ", "ng": "نغ", "zh": "ج", "ph": "ف",
}
_ARABIC_V_INITIAL = {"a": "أ", "e": "إ", "i": "إي", "o": "أو", "u": "أو"}
_ARABIC_V = {"a": "ا", "e": "ي", "i": "ي", "o": "و", "u": "و"}
_DIGITS = {"Devanagari": "०१२३४५६७८९", "Arabic": "٠١٢٣٤٥٦٧٨٩"}
_PUNCT = {"Devanagari": {".": "।"}, "Arabic": {"?": "؟", ",": "،"}}


def _abugida(units: list[str], consonants: dict, vowels: dict, signs: dict, killer: str,
             final_killer: bool) -> str:
    out = []
    i = 0
    while i < len(units):
        unit = units[i]
        if unit in consonants:
            out.append(consonants[unit])
            nxt = units[i + 1] if i + 1 < len(units) else None
            if nxt in _VOWELS:
                out.append(signs[nxt])
                i += 1
            elif nxt is not None or final_killer:
                out.append(killer)
        else:
            out.append(vowels.get(unit, unit))
        i += 1
    return "".join(out)


def transliterate(word: str, script: str, orthography: dict[str, str] | None = None) -> str:
    """Write a romanised word (units ``a e i o u p b ... ch sh th kh gh ng zh ph``) in ``script``.

    Deterministic and context-sensitive where the script is (Devanagari/Tamil vowel signs and virama or
    pulli, Arabic initial vowels, Cyrillic ``ya``/``yu``/``yo``, Greek final sigma). Characters that are not
    romanised units (digits, apostrophes) pass through unchanged.
    """
    units = _segment(word)
    if script == "Latin":
        if not orthography:
            return word
        return "".join(orthography.get(u, u) for u in units)
    if script == "Cyrillic":
        out = []
        i = 0
        while i < len(units):
            if units[i] == "y" and i + 1 < len(units) and units[i + 1] in _CYRILLIC_Y:
                out.append(_CYRILLIC_Y[units[i + 1]])
                i += 2
                continue
            out.append(_CYRILLIC.get(units[i], units[i]))
            i += 1
        return "".join(out)
    if script == "Greek":
        text = "".join(_GREEK.get(u, u) for u in units)
        return text[:-1] + "ς" if text.endswith("σ") else text
    if script == "Devanagari":
        return _abugida(units, _DEVANAGARI_C, _DEVANAGARI_V, _DEVANAGARI_M, "\u094d", final_killer=False)
    if script == "Tamil":
        return _abugida(units, _TAMIL_C, _TAMIL_V, _TAMIL_M, "\u0bcd", final_killer=True)
    if script == "Arabic":
        out = []
        for i, unit in enumerate(units):
            if unit in _VOWELS:
                out.append((_ARABIC_V_INITIAL if i == 0 else _ARABIC_V)[unit])
            else:
                out.append(_ARABIC_C.get(unit, unit))
        return "".join(out)
    raise ValueError(f"unknown script {script!r}")


def _digits(number: int, script: str) -> str:
    text = str(number)
    table = _DIGITS.get(script)
    return "".join(table[int(c)] for c in text) if table else text


# --------------------------------------------------------------------------------------------------
# Phonology and lexicon
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Meanings
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Realisation
# --------------------------------------------------------------------------------------------------


class _Tok:
    __slots__ = ("form", "lemma", "upos", "feats", "deprel", "head", "ner", "role", "sub", "idx")

    def __init__(self, form: str, lemma: str, upos: str, deprel: str, head: _Tok | None = None,
                 ner: str = "O", role: str = "", sub: str = "", feats: str = "_") -> None:
        self.form = form
        self.lemma = lemma
        self.upos = upos
        self.deprel = deprel
        self.head = head
        self.ner = ner
        self.role = role
        self.sub = sub
        self.feats = feats


@dataclass
class Realisation:
    """A realised sentence: tokens with gold annotations and the detokenised text.

    ``heads`` are 1-based (0 = root); ``offsets[i]`` is the character span of token i in ``text``.
    """

    forms: list[str]
    lemmas: list[str]
    upos: list[str]
    feats: list[str]
    heads: list[int]
    deprels: list[str]
    ner: list[str]
    space_after: list[bool]
    text: str
    offsets: list[tuple[int, int]]
    roles: list[tuple[str, str]]

    def span(self, role: str, subs: tuple[str, ...] = ("core", "count")) -> tuple[int, int]:
        """Character span of the tokens of a constituent (``agent``, ``patient``, ``location``, ``time``)."""
        idx = [i for i, (r, s) in enumerate(self.roles) if r == role and s in subs]
        if not idx:
            raise KeyError(role)
        return self.offsets[idx[0]][0], self.offsets[idx[-1]][1]


_PUNCT_UPOS = "PUNCT"


_PRONOUNS = ("he", "she", "they")
_ENTITY_LABELS = {"per": ("PER", "first"), "org": ("ORG", "org"), "loc": ("LOC", "city")}
_CASE_FEATS = {"nom": "Case=Nom|", "acc": "Case=Acc|", "dat": "Case=Dat|", "loc": "Case=Loc|"}
_TENSE_FEATS = {"past": "Tense=Past", "present": "Tense=Pres", "future": "Tense=Fut"}


class _Grammar:
    """Realises meanings in one language."""

    def __init__(self, spec: LanguageSpec, lexicon: _Lexicon, names: dict[str, list[str]]) -> None:
        self.spec = spec
        self.lex = lexicon
        self.names = names
        self.analytic = spec.morphology == "analytic"
        self.cased = spec.script in _CASED
        self.ortho = dict(spec.orthography) or None
        self.punct = _PUNCT.get(spec.script, {})
        self._cache: dict[str, str] = {}
        self._fw: dict[str, list[str]] = {}
        self._forms: dict[tuple, str] = {}
        self._names: dict[str, str] = {}
        self.head_final = spec.head_final
        self.adj_before = spec.adjective_order == "before"
        self.order = _ORDERS[spec.word_order]
        self.wh_front = spec.word_order != "SOV"
        self.fw1 = {name: " ".join(self.fw(name)) for name in lexicon.fw}

    # ---- word forms -------------------------------------------------------------------------------
    def write(self, roman: str) -> str:
        """Transliterate a romanised word into this language's script (cached)."""
        out = self._cache.get(roman)
        if out is None:
            out = transliterate(roman, self.spec.script, self.ortho)
            self._cache[roman] = out
        return out

    def name(self, roman: str) -> str:
        """A proper-name token: transliterated, capitalised in cased scripts."""
        out = self._names.get(roman)
        if out is None:
            form = self.write(roman)
            out = self._names[roman] = form[:1].upper() + form[1:] if self.cased else form
        return out

    def number(self, n: int) -> str:
        return _digits(n, self.spec.script)

    def _suffix(self, stem: str, name: str) -> str:
        suffix = self.lex.suffixes.get(name, "")
        if not suffix:
            return stem
        if self.spec.harmony:
            vowels = [c for c in stem if c in _VOWELS]
            front = bool(vowels) and vowels[-1] in "ei"
            suffix = suffix.replace("A", "e" if front else "a").replace("I", "i" if front else "u")
        if stem and stem[-1] in _VOWELS and suffix[0] in _VOWELS:
            stem += "y" if self.spec.harmony else "n"
        return stem + suffix

    def particle(self, case: str) -> str:
        return self.write(self.lex.suffixes[case].replace("A", "a").replace("I", "u"))

    def noun(self, key: tuple, plural: bool, case: str) -> str:
        ck = (key, plural, case)
        out = self._forms.get(ck)
        if out is None:
            out = self._forms[ck] = self._noun(key, plural, case)
        return out

    def _noun(self, key: tuple, plural: bool, case: str) -> str:
        roman = self.lex.forms[key]
        if plural:
            roman = self._suffix(roman, "pl")
        if not self.analytic and case != "nom":
            roman = self._suffix(roman, case)
        return self.write(roman)

    def verb(self, key: tuple, tense: str, negated: bool, plural_agent: bool) -> str:
        ck = (key, tense, negated, plural_agent)
        out = self._forms.get(ck)
        if out is None:
            out = self._forms[ck] = self._verb(key, tense, negated, plural_agent)
        return out

    def lemma(self, key: tuple) -> str:
        """The citation form of a content lexeme."""
        out = self._forms.get(key)
        if out is None:
            out = self._forms[key] = self.write(self.lex.forms[key])
        return out

    def _verb(self, key: tuple, tense: str, negated: bool, plural_agent: bool) -> str:
        roman = self.lex.forms[key]
        if not self.analytic:
            if negated:
                neg = self.lex.suffixes["neg"]
                roman = neg + roman if self.spec.neg_prefix else self._suffix(roman, "neg")
            if tense != "present":
                roman = self._suffix(roman, "past" if tense == "past" else "fut")
            if plural_agent:
                roman = self._suffix(roman, "agr")
        return self.write(roman)

    def fw(self, name: str) -> list[str]:
        out = self._fw.get(name)
        if out is None:
            out = self._fw[name] = [self.write(part) for part in self.lex.fw[name].split()]
        return out

    # ---- phrases ----------------------------------------------------------------------------------
    def np(self, np: NP, case: str, role: str, wh: str | None = None) -> tuple[list[_Tok], _Tok]:
        """Tokens of a noun phrase in ``case`` (nom/acc/dat/loc) with its case marker, and its head."""
        analytic = self.analytic
        kind = np.kind
        entity_like = False
        if wh == "who" or wh == "what" or kind == "pron":
            name = wh if wh == "who" or wh == "what" else _PRONOUNS[np.lex]
            lemma = self.fw1[name]
            form = lemma if analytic or case == "nom" else self.write(self._suffix(self.lex.fw[name], case))
            head = _Tok(form, lemma, "PRON", "", None, "O", role, "core")
            toks = [head]
        elif kind == "noun":
            key = ("n", np.cls, np.lex)
            count = np.count
            plural = np.plural or count is not None or wh == "howmany"
            feats = "Number=Plur" if plural else "Number=Sing"
            if not analytic:
                feats = _CASE_FEATS[case] + feats
            form = self.noun(key, plural, case)
            head = _Tok(form, self.lemma(key), "NOUN", "", None, "O", role, "core", feats)
            if np.adjs:
                adjs = [_Tok(f, f, "ADJ", "amod", head, "O", role, "core") for f in map(self.lemma, np.adjs)]
                toks = adjs + [head] if self.adj_before else [head] + adjs
            else:
                toks = [head]
            if wh == "howmany":
                words = self.fw("howmany")
                if len(words) == 2:
                    many = _Tok(words[1], words[1], "ADJ", "amod", head, "O", role, "core")
                    toks = [_Tok(words[0], words[0], "ADV", "advmod", many, "O", role, "core"), many] + toks
                else:
                    toks = [_Tok(words[0], words[0], "DET", "det", head, "O", role, "core")] + toks
            elif count is not None:
                n = self.number(count)
                toks = [_Tok(n, n, "NUM", "nummod", head, "O", role, "count")] + toks
            if analytic and wh is None and (np.definite or not plural) and count is None:
                art = self.fw1["def" if np.definite else "indef"]
                toks = [_Tok(art, art, "DET", "det", head, "O", role, "core")] + toks
        else:
            label, pool = _ENTITY_LABELS[kind]
            first = self.name(self.names[pool][np.lex])
            head = _Tok(first, first, "PROPN", "", None, "B-" + label, role, "core")
            toks = [head]
            if kind == "per" and np.last >= 0:
                last = self.name(self.names["last"][np.last])
                toks.append(_Tok(last, last, "PROPN", "flat", head, "I-" + label, role, "core"))
            entity_like = True
        if case != "nom":
            if analytic:
                if case != "acc":
                    marker = self.fw1[case]
                    tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
                    toks = toks + [tok] if self.head_final else [tok] + toks
            elif entity_like:
                marker = self.particle(case)
                tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
                toks = toks + [tok] if self.head_final else [tok] + toks
        return toks, head

    def date(self, date: Date, role: str = "time") -> tuple[list[_Tok], _Tok]:
        year = self.number(date.year)
        if date.month is None:
            head = _Tok(year, year, "NUM", "", None, "B-DATE", role, "core")
            toks = [head]
        else:
            month = self.lemma(("month", "", date.month))
            month = month[:1].upper() + month[1:] if self.cased else month
            head = _Tok(month, month, "PROPN", "", None, "I-DATE", role, "core")
            toks = [head, _Tok(year, year, "NUM", "nummod", head, "I-DATE", role, "core")]
            if date.day is not None:
                day = self.number(date.day)
                toks.insert(0, _Tok(day, day, "NUM", "nummod", head, "B-DATE", role, "core"))
            else:
                head.ner = "B-DATE"
        marker = self.fw1["time"]
        tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
        return (toks + [tok] if self.head_final else [tok] + toks), head

    def clause(self, cl: Clause, wh: tuple[str, str] | None = None,
               front: str | None = None) -> tuple[list[_Tok], _Tok]:
        """Tokens of a clause in this language's order; the verb is the returned head."""
        wh_role, wh_kind = wh if wh else (None, None)
        vkey = ("v", *cl.verb)
        agent = cl.agent
        tense, negated = cl.tense, cl.negated
        vfeats = _TENSE_FEATS[tense]
        if negated and not self.analytic:
            vfeats = "Polarity=Neg|" + vfeats
        form = self.verb(vkey, tense, negated, agent.plural or agent.count is not None)
        verb = _Tok(form, self.lemma(vkey), "VERB", "root", None, "O", "verb", "core", vfeats)
        vc = [verb]
        if self.analytic:
            if negated:
                neg = self.fw1["neg"]
                vc.insert(0, _Tok(neg, neg, "PART", "advmod", verb, "O", "verb", "neg"))
            if tense != "present":
                aux = self.fw1["past" if tense == "past" else "fut"]
                tok = _Tok(aux, aux, "AUX", "aux", verb, "O", "verb", "aux")
                vc = vc + [tok] if self.head_final else [tok] + vc
        parts: dict[str, list[_Tok]] = {"V": vc}
        args = (("agent", agent, "nom", "nsubj"), ("patient", cl.patient, "acc", "obj"),
                ("recipient", cl.recipient, "dat", "obl"))
        for role, np, case, deprel in args:
            if np is not None:
                toks, head = self.np(np, case, role, wh_kind if wh_role == role else None)
                head.deprel, head.head = deprel, verb
                parts[role] = toks
        if wh_role == "location":
            w = self.fw1["where"]
            parts["location"] = [_Tok(w, w, "ADV", "advmod", verb, "O", "location", "core")]
        elif cl.location is not None:
            toks, head = self.np(cl.location, "loc", "location")
            head.deprel, head.head = "obl", verb
            parts["location"] = toks
        if wh_role == "time":
            w = self.fw1["when"]
            parts["time"] = [_Tok(w, w, "ADV", "advmod", verb, "O", "time", "core")]
        elif cl.time is not None:
            toks, head = self.date(cl.time)
            head.deprel, head.head = "obl", verb
            parts["time"] = toks
        if cl.manner is not None:
            adv = self.lemma(("adv", "", cl.manner))
            parts["manner"] = [_Tok(adv, adv, "ADV", "advmod", verb, "O", "manner", "core")]
        order = self.order
        if front in parts or (wh_role in parts and self.wh_front):
            order = list(order)
            for role in (front, wh_role if self.wh_front else None):
                if role in parts:
                    order.remove(role)
                    order.insert(0, role)
        toks = []
        for role in order:
            if role in parts:
                toks += parts[role]
        return toks, verb

    def tokens(self, sent: Sentence, wh: tuple[str, str] | None = None) -> list[_Tok]:
        """The tokens of a sentence in order (``wh=(role, kind)`` makes its first clause a question)."""
        toks, root = self.clause(sent.clauses[0], wh, sent.front)
        root.head, root.deprel = None, "root"
        for cl in sent.clauses[1:]:
            more, verb = self.clause(cl)
            verb.deprel, verb.head = "conj", root
            cc = self.fw(sent.conj)[0]
            toks += [_Tok(cc, cc, "CCONJ", "cc", verb, "O", "conj", "core")] + more
        mark = "?" if wh else "."
        mark = self.punct.get(mark, mark)
        toks.append(_Tok(mark, mark, _PUNCT_UPOS, "punct", root, "O", "punct", "core"))
        if self.cased:
            first = toks[0]
            first.form = first.form[:1].upper() + first.form[1:]
        return toks

    def text(self, sent: Sentence, wh: tuple[str, str] | None = None) -> str:
        """The detokenised text of a sentence (no space before punctuation)."""
        return "".join([t.form if t.upos == _PUNCT_UPOS or i == 0 else " " + t.form
                        for i, t in enumerate(self.tokens(sent, wh))])

    def realise(self, sent: Sentence, wh: tuple[str, str] | None = None) -> Realisation:
        """Realise a sentence with all annotations (``wh=(role, kind)`` makes it a question)."""
        toks = self.tokens(sent, wh)
        for i, t in enumerate(toks):
            t.idx = i + 1
        n = len(toks)
        space_after = [i + 1 < n and toks[i + 1].upos != _PUNCT_UPOS for i in range(n)]
        pieces, offsets, pos = [], [], 0
        for t, sp in zip(toks, space_after, strict=True):
            end = pos + len(t.form)
            offsets.append((pos, end))
            pieces.append(t.form + " " if sp else t.form)
            pos = end + 1 if sp else end
        return Realisation(
            forms=[t.form for t in toks], lemmas=[t.lemma for t in toks], upos=[t.upos for t in toks],
            feats=[t.feats for t in toks], heads=[0 if t.head is None else t.head.idx for t in toks],
            deprels=[t.deprel for t in toks], ner=[t.ner for t in toks], space_after=space_after,
            text="".join(pieces), offsets=offsets, roles=[(t.role, t.sub) for t in toks],
        )


_ORDERS = {
    "SVO": ("agent", "manner", "V", "patient", "recipient", "location", "time"),
    "SOV": ("agent", "time", "location", "recipient", "patient", "manner", "V"),
    "VSO": ("V", "agent", "patient", "recipient", "location", "time", "manner"),
}


class World:
    """All synthetic languages for one seed: lexicons, shared names and grammars.

    ``World(seed).grammar(code).realise(sentence)`` realises a meaning; :meth:`sampler` draws meanings.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        rng = random.Random(f"{seed}/names")
        used: set[str] = set()
        self.names: dict[str, list[str]] = {}
        for pool, n in ENTITY_POOLS.items():
            forms = []
            while len(forms) < n:
                form = _make_word(rng, "names")
                if form not in used and len(form) > 2:
                    used.add(form)
                    forms.append(form)
            self.names[pool] = forms
        source = _Lexicon(_SPEC_BY_CODE[SOURCE], seed, None)
        self.lexicons = {SOURCE: source}
        for spec in SPECS:
            if spec.code != SOURCE:
                self.lexicons[spec.code] = _Lexicon(spec, seed, source)
        self.grammars = {s.code: _Grammar(s, self.lexicons[s.code], self.names) for s in SPECS}

    def grammar(self, code: str) -> _Grammar:
        """The grammar of language ``code``."""
        return self.grammars[code]

    def sampler(self, stream: str) -> _Sampler:
        """A meaning sampler with its own deterministic random stream."""
        return _Sampler(random.Random(f"{self.seed}/{stream}"))

    def entity_strings(self, sent: Sentence, code: str) -> list[str]:
        """The surface strings of the named entities and numbers of ``sent`` in language ``code``."""
        g = self.grammars[code]
        out: list[str] = []
        for cl in sent.clauses:
            for np in (cl.agent, cl.patient, cl.recipient, cl.location):
                if np is None:
                    continue
                if np.is_entity:
                    toks, _ = g.np(np, "nom", "x")
                    out.append(" ".join(t.form for t in toks if t.upos == "PROPN"))
                if np.count is not None:
                    out.append(g.number(np.count))
            if cl.time is not None:
                out.append(g.number(cl.time.year))
        return out


# --------------------------------------------------------------------------------------------------
# Meaning operations for NLI and PAWS-X
# --------------------------------------------------------------------------------------------------


def _modifiers(cl: Clause) -> list[str]:
    present = []
    for role in ("location", "time", "manner"):
        if getattr(cl, role) is not None:
            present.append(role)
    for role in ("agent", "patient", "recipient"):
        np = getattr(cl, role)
        if np is not None and np.kind == "noun":
            if np.adjs:
                present.append(role + ".adj")
            if np.count is not None:
                present.append(role + ".count")
    return present


def _drop(cl: Clause, rng: random.Random) -> Clause | None:
    """Remove one modifier (the result is entailed by a positive clause)."""
    options = _modifiers(cl)
    if not options:
        return None
    what = rng.choice(options)
    if "." not in what:
        return replace(cl, **{what: None})
    role, part = what.split(".")
    np = getattr(cl, role)
    if part == "adj":
        adjs = list(np.adjs)
        adjs.pop(rng.randrange(len(adjs)))
        return replace(cl, **{role: replace(np, adjs=tuple(adjs))})
    return replace(cl, **{role: replace(np, count=None, plural=True, definite=False)})  # "3 dogs" -> "dogs"


def _add(cl: Clause, sampler: _Sampler) -> Clause | None:
    """Add one modifier that the clause does not state (unverifiable information)."""
    rng = sampler.rng
    options = [r for r in ("location", "time", "manner") if getattr(cl, r) is None]
    for role in ("agent", "patient"):
        np = getattr(cl, role)
        if np is not None and np.kind == "noun" and not np.adjs:
            options.append(role)
    if not options:
        return None
    what = rng.choice(options)
    if what == "location":
        return replace(cl, location=sampler.location(_PROFILES["rich"]))
    if what == "time":
        return replace(cl, time=sampler.date())
    if what == "manner":
        return replace(cl, manner=sampler.pick("adv"))
    np = getattr(cl, what)
    return replace(cl, **{what: replace(np, adjs=sampler.adjectives(np.cls, 1))})


def _change_argument(cl: Clause, sampler: _Sampler) -> Clause | None:
    """Replace an entity, a year or a count by a different one (same event, incompatible fact)."""
    rng = sampler.rng
    options = [r for r in ("agent", "patient", "recipient", "location")
               if getattr(cl, r) is not None and getattr(cl, r).is_entity]
    options += [r + ".count" for r in ("agent", "patient", "recipient")
                if getattr(cl, r) is not None and getattr(cl, r).count is not None]
    if cl.time is not None:
        options.append("time")
    if not options:
        return None
    what = rng.choice(options)
    if what == "time":
        return replace(cl, time=replace(cl.time, year=cl.time.year + rng.choice((-3, -2, -1, 1, 2, 5, 10))))
    if what.endswith(".count"):
        role = what.split(".")[0]
        np = getattr(cl, role)
        return replace(cl, **{role: replace(np, count=np.count + rng.randint(1, 9))})
    np = getattr(cl, what)
    pool = ENTITY_POOLS["first" if np.kind == "per" else "city" if np.kind == "loc" else "org"]
    new = (np.lex + rng.randint(1, pool - 1)) % pool
    return replace(cl, **{what: replace(np, lex=new)})


def _nli_pair(sampler: _Sampler, label: str) -> tuple[Clause, Clause]:
    """A premise and a hypothesis with the given label (monotonicity under negation is respected)."""
    rng = sampler.rng
    while True:
        premise = sampler.clause(_PROFILES["rich"])
        negated = rng.random() < 0.3
        premise = replace(premise, negated=negated)
        if label == "entailment":
            hyp = _add(premise, sampler) if negated else _drop(premise, rng)
        elif label == "neutral":
            hyp = _drop(premise, rng) if negated else _add(premise, sampler)
        elif negated:  # contradiction of a negated premise: the positive statement (possibly more specific)
            hyp = replace(premise, negated=False)
            if rng.random() < 0.4:
                hyp = _add(hyp, sampler) or hyp
        else:
            kind = rng.choice(("negate", "antonym", "argument"))
            if kind == "negate":
                hyp = replace(premise, negated=True)
                if rng.random() < 0.4:
                    hyp = _drop(hyp, rng) or hyp
            elif kind == "antonym":
                hyp = replace(premise, verb=(premise.verb[0], premise.verb[1] ^ 1))
            else:
                hyp = _change_argument(premise, sampler)
        if hyp is not None and hyp != premise:
            return premise, hyp


def _paws_pair(sampler: _Sampler, paraphrase: bool) -> tuple[Sentence, Sentence]:
    """PAWS-style pair: same meaning in another order, or the same words with swapped roles."""
    rng = sampler.rng
    while True:
        cl = sampler.clause(_PROFILES["rich"])
        if cl.verb[0] == "perceive" and (cl.patient is None or not cl.patient.animate):
            cl = replace(cl, patient=sampler.noun("animate") if rng.random() < 0.5 else sampler.entity("per"))
        adjuncts = [r for r in ("location", "time") if getattr(cl, r) is not None]
        front1 = rng.choice(adjuncts + [None])
        if paraphrase:
            fronts = [r for r in adjuncts + [None] if r != front1]
            np = cl.agent if cl.agent.kind == "noun" and len(cl.agent.adjs) == 2 else None
            if np is not None and rng.random() < 0.5:
                other = replace(cl, agent=replace(np, adjs=np.adjs[::-1]))
                return Sentence((cl,), front=front1), Sentence((other,), front=front1)
            if not fronts:
                continue
            return Sentence((cl,), front=front1), Sentence((cl,), front=rng.choice(fronts))
        if cl.verb[0] == "perceive":
            swapped = replace(cl, agent=cl.patient, patient=cl.agent)
        elif cl.verb[0] == "give":
            swapped = replace(cl, agent=cl.recipient, recipient=cl.agent)
        else:
            continue
        if swapped.agent.kind == "pron" or (swapped.patient and swapped.patient.kind == "pron"):
            continue
        if swapped == cl:
            continue
        return Sentence((cl,), front=front1), Sentence((swapped,), front=rng.choice(adjuncts + [None]))


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def _conllu(r: Realisation, sent_id: str) -> str:
    lines = [f"# sent_id = {sent_id}", f"# text = {r.text}"]
    for i in range(len(r.forms)):
        misc = "_" if r.space_after[i] or i + 1 == len(r.forms) else "SpaceAfter=No"
        lines.append(f"{i + 1}\t{r.forms[i]}\t{r.lemmas[i]}\t{r.upos[i]}\t_\t{r.feats[i]}\t{r.heads[i]}\t"
                     f"{r.deprels[i]}\t_\t{misc}")
    return "\n".join(lines) + "\n\n"


def _ner(r: Realisation) -> str:
    return "".join(f"{f} {t}\n" for f, t in zip(r.forms, r.ner, strict=True)) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _size(base: int, scale: float, minimum: int) -> int:
    return max(minimum, round(base * scale))


class _Generator:
    def __init__(self, root: Path, seed: int, scale: float) -> None:
        self.root, self.seed, self.scale = root, seed, scale
        self.world = World(seed)
        self.codes = [s.code for s in SPECS]
        self.counts: dict[str, int] = {}

    def put(self, rel: str, text: str, count: int) -> None:
        _write(self.root / rel, text)
        self.counts[rel] = count

    def mlm(self) -> None:
        question_p = _PROFILES["mlm"]["question"]
        for spec in SPECS:
            sampler = self.world.sampler(f"mlm/{spec.code}")
            g = self.world.grammar(spec.code)
            n = _size(BUCKET_SENTENCES[spec.bucket], self.scale, MIN_MLM_LINES)
            rel = f"mlm/{spec.code}.txt"
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(self.root / rel, "w", encoding="utf-8", newline="\n") as handle:
                for start in range(0, n, 5000):  # stream: large scales never hold a corpus in memory
                    lines = []
                    for _ in range(min(5000, n - start)):
                        sent = sampler.sentence("mlm")
                        wh = None
                        if sampler.rng.random() < question_p:
                            sent, wh = _question_for(sent, sampler.rng)
                        lines.append(g.text(sent, wh) + "\n")
                    handle.write("".join(lines))
            self.counts[rel] = n

    def ud_ner(self, task: str, profile: str) -> None:
        for split in SPLITS:
            n = _size(TASK_SIZES[split], self.scale, MIN_EVAL_EXAMPLES)
            sampler = self.world.sampler(f"{task}/{split}")
            meanings = [sampler.sentence(profile) for _ in range(n)]
            for code in self.codes:
                g = self.world.grammar(code)
                if task == "ud":
                    body = "".join(_conllu(g.realise(m), f"{code}-{split}-{i + 1:05d}")
                                   for i, m in enumerate(meanings))
                    self.put(f"ud/{code}/{split}.conllu", body, n)
                else:
                    self.put(f"ner/{code}/{split}.txt", "".join(_ner(g.realise(m)) for m in meanings), n)

    def xnli(self) -> None:
        for split in SPLITS:
            n = _size(TASK_SIZES[split], self.scale, MIN_EVAL_EXAMPLES)
            sampler = self.world.sampler(f"xnli/{split}")
            labels = [NLI_LABELS[i % 3] for i in range(n)]
            sampler.rng.shuffle(labels)
            pairs = [(*_nli_pair(sampler, label), label) for label in labels]
            for code in self.codes:
                g = self.world.grammar(code)
                rows = ["premise\thypothesis\tlabel"]
                rows += [f"{g.text(Sentence((p,)))}\t{g.text(Sentence((h,)))}\t{label}"
                         for p, h, label in pairs]
                self.put(f"xnli/{code}/{split}.tsv", "\n".join(rows) + "\n", n)

    def pawsx(self) -> None:
        for split in SPLITS:
            n = _size(TASK_SIZES[split], self.scale, MIN_EVAL_EXAMPLES)
            sampler = self.world.sampler(f"pawsx/{split}")
            labels = [int(i < round(0.45 * n)) for i in range(n)]
            sampler.rng.shuffle(labels)
            pairs = [(*_paws_pair(sampler, bool(label)), label) for label in labels]
            for code in self.codes:
                g = self.world.grammar(code)
                rows = ["id\tsentence1\tsentence2\tlabel"]
                rows += [f"{i + 1}\t{g.text(a)}\t{g.text(b)}\t{label}"
                         for i, (a, b, label) in enumerate(pairs)]
                self.put(f"pawsx/{code}/{split}.tsv", "\n".join(rows) + "\n", n)

    def qa(self) -> None:
        for split in SPLITS:
            n = _size(TASK_SIZES[split], self.scale, MIN_EVAL_EXAMPLES)
            sampler = self.world.sampler(f"qa/{split}")
            rng = sampler.rng
            paragraphs: list[tuple[list[Sentence], list[tuple[int, str, str, str]]]] = []
            total = 0
            while total < n:
                sents = [Sentence((sampler.clause(_PROFILES["rich"]),)) for _ in range(rng.randint(3, 5))]
                candidates = [(j, role, kind) for j, s in enumerate(sents)
                              for role, kind in _askable(s.clauses[0])]
                rng.shuffle(candidates)
                k = min(len(candidates), rng.randint(1, 3), n - total)
                qid = [hashlib.sha1(f"{self.seed}/{split}/{len(paragraphs)}/{q}".encode()).hexdigest()[:24]
                       for q in range(k)]
                paragraphs.append((sents, [(*c, qid[q]) for q, c in enumerate(candidates[:k])]))
                total += k
            for code in self.codes:
                g = self.world.grammar(code)
                data = []
                for p, (sents, questions) in enumerate(paragraphs):
                    reals = [g.realise(s) for s in sents]
                    starts = list(accumulate([0] + [len(r.text) + 1 for r in reals[:-1]]))
                    context = " ".join(r.text for r in reals)
                    qas = []
                    for j, role, kind, qid in questions:
                        span_role = role.split(".")[0]
                        subs = ("count",) if kind == "howmany" else ("core", "count")
                        a, b = reals[j].span(span_role, subs)
                        answer = context[starts[j] + a:starts[j] + b]
                        question = g.text(sents[j], (span_role, kind))
                        qas.append({"id": qid, "question": question,
                                    "answers": [{"text": answer, "answer_start": starts[j] + a}]})
                    title = f"{split}_{p // 3:04d}"
                    if data and data[-1]["title"] == title:
                        data[-1]["paragraphs"].append({"context": context, "qas": qas})
                    else:
                        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
                obj = {"version": "1.1", "data": data}
                self.put(f"qa/{code}/{split}.json", json.dumps(obj, ensure_ascii=False) + "\n", total)

    def tatoeba(self) -> None:
        n = _size(TATOEBA_SIZE, self.scale, MIN_EVAL_EXAMPLES)
        _, texts = _tatoeba(self.world, n)
        source = "".join(t + "\n" for t in texts[SOURCE])
        for code in self.codes:
            if code != SOURCE:
                stem = f"tatoeba/tatoeba.{code}-{SOURCE}"
                self.put(f"{stem}.{code}", "".join(t + "\n" for t in texts[code]), n)
                self.put(f"{stem}.{SOURCE}", source, n)


def _tatoeba(world: World, n: int) -> tuple[list[Sentence], dict[str, list[str]]]:
    sampler = world.sampler("tatoeba")
    seen: dict[str, set[str]] = {code: set() for code in world.grammars}
    texts: dict[str, list[str]] = {code: [] for code in world.grammars}
    out: list[Sentence] = []
    while len(out) < n:
        sent = sampler.sentence("simple")
        cand = {code: g.text(sent) for code, g in world.grammars.items()}
        if any(cand[c] in seen[c] for c in cand):
            continue
        for c, t in cand.items():
            seen[c].add(t)
            texts[c].append(t)
        out.append(sent)
    return out, texts


def tatoeba_meanings(world: World, n: int) -> list[Sentence]:
    """The ``n`` meanings of the Tatoeba files in line order (no line repeats within any language)."""
    return _tatoeba(world, n)[0]


def _askable(cl: Clause) -> list[tuple[str, str]]:
    out = [("agent", "who" if cl.agent.animate else "what")] if cl.agent.kind != "pron" else []
    if cl.patient is not None:
        out.append(("patient", "who" if cl.patient.animate else "what"))
    if cl.location is not None:
        out.append(("location", "where"))
    if cl.time is not None:
        out.append(("time", "when"))
    for role in ("agent", "patient"):
        np = getattr(cl, role)
        if np is not None and np.count is not None:
            out.append((role + ".count", "howmany"))
    return out


def _question_for(sent: Sentence, rng: random.Random) -> tuple[Sentence, tuple[str, str] | None]:
    sent = Sentence(sent.clauses[:1])
    options = _askable(sent.clauses[0])
    if not options:
        return sent, None
    role, kind = rng.choice(options)
    return sent, (role.split(".")[0], kind)


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def generate_panel(out_dir: str | Path, seed: int = 0, scale: float = 1.0, overwrite: bool = False) -> Path:
    """Generate the synthetic panel (text for MLM and gold data for six tasks) under ``out_dir``.

    The output is written atomically and is a pure function of ``(seed, scale)``: the same arguments give
    byte-identical files. See the module docstring for the layout.

    Args:
        out_dir: directory to create.
        seed: seed of the world (lexicons, names) and of every sentence stream.
        scale: multiplies corpus and task sizes (``1.0``: MLM 20000/8000/3000/1000 sentences for the
            high/mid/low/tail buckets; task splits 600/150/150 examples; dev/test keep at least 20).
        overwrite: replace an existing ``out_dir``.

    Returns:
        The output directory.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0 or scale != scale:
        raise XltError(f"synthetic scale {scale!r} is not a positive number — use e.g. --scale 1.0 or 0.05")
    if scale > 1000:
        raise XltError(f"synthetic scale {scale} is too large — use a value up to 1000")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise XltError(f"synthetic seed {seed!r} is not an integer — pass e.g. --seed 0")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise XltError(f"output path {out} exists and is not a directory — choose another path")
    seed = int(seed)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        gen = _Generator(tmp, seed, float(scale))
        gen.mlm()
        gen.ud_ner("ud", "ud")
        gen.ud_ner("ner", "ner")
        gen.xnli()
        gen.pawsx()
        gen.qa()
        gen.tatoeba()
        save_panel(synthetic_panel(), tmp / "panel.yaml")
        manifest = {"generator": "xlt.datamodules.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                    "scale": float(scale), "source": SOURCE, "counts": dict(sorted(gen.counts.items()))}
        _write(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return out


def synth(out: str = "data/synthetic", seed: int = 0, scale: float = 1.0, overwrite: bool = False) -> None:
    """Generate the synthetic language panel (MLM text and gold data for every task) into a directory.

    Args:
        out: output directory (created atomically).
        seed: seed of the synthetic world and of every sentence stream; same seed, same bytes.
        scale: size multiplier (1.0: MLM 20000/8000/3000/1000 sentences per high/mid/low/tail language,
            task splits of 600/150/150 examples).
        overwrite: replace ``out`` if it exists.
    """
    start = time.perf_counter()
    path = generate_panel(out, seed=seed, scale=scale, overwrite=overwrite)
    print(f"wrote synthetic panel ({len(SPECS)} languages, seed {seed}, scale {scale}) to {path} "
          f"in {time.perf_counter() - start:.1f}s")
