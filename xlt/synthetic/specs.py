"""Language specifications: the typological parameters of each synthetic language, and the panel they form.

A :class:`LanguageSpec` is all that distinguishes one synthetic language from another (script, word order,
adpositions, adjective order, morphology, lexical overlap with the source, sound changes, suffixes). The
ten specs of :data:`SPECS` are the panel; :func:`synthetic_panel` turns them into the
:class:`~xlt.languages.Panel` that ``panel.yaml`` and ``configs/panels/synthetic.yaml`` hold. Change a
language here; everything else reads these records.
"""

from __future__ import annotations

from dataclasses import dataclass

from xlt.languages import Language, Panel

SOURCE = "qaa"
#: MLM sentences per resource bucket at ``scale=1.0``.
BUCKET_SENTENCES = {"high": 20000, "mid": 8000, "low": 3000, "tail": 1000}


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
        source=("xlt synthetic generator (xlt.synthetic; controlled languages after "
                f"K et al. 2020 and Dufter & Schuetze 2020). MLM sentences per bucket at scale 1: {sizes}."),
    )
