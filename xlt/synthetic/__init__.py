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
that :mod:`xlt.formats` parses::

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

The package, in the order the data flows through it:

    specs           LanguageSpec, the ten SPECS and the panel they form (synthetic_panel)
    scripts         romanised units, transliteration into six scripts, script digits
    lexicon         concept inventory, phonologies, each language's forms (cognates vs native words)
    meanings        NP / Date / Clause / Sentence and the Zipfian meaning sampler
    grammar         realisation of a meaning in one language (tokens, gold annotations, text)
    world           all languages of one seed: shared names, lexicons, grammars, meaning streams
    task_meanings   NLI / PAWS-X pairs, QA questions, Tatoeba meanings (operations on meanings)
    writers         the per-task files in real formats (CoNLL-U, CoNLL, TSV, SQuAD JSON, aligned text)
    generator       generate_panel, the ``xlt synth`` command, the shared cache (cached_panel)
"""

from xlt.synthetic.generator import GENERATOR_VERSION, cached_panel, cached_panel_dir, generate_panel, synth
from xlt.synthetic.grammar import Realisation
from xlt.synthetic.meanings import NP, Clause, Date, Sentence
from xlt.synthetic.scripts import transliterate
from xlt.synthetic.specs import BUCKET_SENTENCES, SOURCE, SPECS, LanguageSpec, synthetic_panel
from xlt.synthetic.task_meanings import NLI_LABELS, tatoeba_meanings
from xlt.synthetic.world import World
from xlt.synthetic.writers import MIN_EVAL_EXAMPLES, MIN_MLM_LINES, TASK_SIZES, TATOEBA_SIZE, scaled_size

__all__ = [
    "BUCKET_SENTENCES", "GENERATOR_VERSION", "MIN_EVAL_EXAMPLES", "MIN_MLM_LINES", "NLI_LABELS", "NP", "SOURCE",
    "SPECS", "TASK_SIZES", "TATOEBA_SIZE", "Clause", "Date", "LanguageSpec", "Realisation", "Sentence", "World",
    "cached_panel", "cached_panel_dir", "generate_panel", "scaled_size", "synth", "synthetic_panel",
    "tatoeba_meanings", "transliterate",
]
