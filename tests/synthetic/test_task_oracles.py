"""The synthetic NLI and QA items are solvable by their construction rule, from the text alone.

A rule-based oracle reads the source language's files (analytic, Latin script, English-like function words) and
must score 100 %: if it did not, the gold labels or answers would depend on something the text does not show,
and a model's failure to learn the task would say nothing about transfer.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from xlt.datamodules.tasks import load_task_dataset
from xlt.synthetic.specs import SOURCE

WH_WORDS = {"who", "what", "where", "when"}
PREPOSITIONS = {"on", "in", "to", "at"}  # the source's adpositions before a location, date or recipient


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def _bag(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _words(text) if w not in {".", "?"})


def nli_oracle(premise: str, hypothesis: str) -> str:
    """NLI by monotonicity: a polarity change contradicts; otherwise fewer words (a dropped modifier) is entailed
    under a positive premise and neutral under a negated one, more words the reverse, and any other change of
    words (an antonym, another argument) contradicts."""
    p, h = _bag(premise), _bag(hypothesis)
    if (p["not"] > 0) != (h["not"] > 0):
        return "contradiction"
    negated = p["not"] > 0
    if not h - p and h != p:  # hypothesis words are a strict sub-multiset: a modifier dropped
        return "neutral" if negated else "entailment"
    if not p - h and h != p:  # a modifier added
        return "entailment" if negated else "neutral"
    return "contradiction"


def qa_oracle(context: str, question: str) -> str:
    """The answer is the one contiguous phrase of a context sentence that the question leaves out (after its
    wh-word, or after "how many" and the counted noun it fronts), less a leading preposition."""
    asked = _bag(question)
    if question.lower().startswith("how many"):
        asked -= Counter(["how", "many"])
    else:
        asked -= Counter({w: asked[w] for w in WH_WORDS})
    candidates = []
    for sentence in re.split(r"(?<=\.) ", context):
        words = [w for w in _words(sentence) if w != "."]
        low = [w.lower() for w in words]
        for i in range(len(words)):
            for j in range(i + 1, len(words) + 1):
                if Counter(low[:i] + low[j:]) == asked:
                    candidates.append((j - i, -i, words[i:j]))
    if not candidates:
        return ""
    # the shortest gap; among equal ones (a repeated noun) the last, whose text is then the same phrase
    span = min(candidates)[2]
    while span and span[0].lower() in PREPOSITIONS:
        span = span[1:]
    return " ".join(span)


def test_nli_oracle_on_hand_made_pairs() -> None:
    assert nli_oracle("The dog ran in Paris.", "The dog ran.") == "entailment"
    assert nli_oracle("The dog did not run in Paris.", "The dog did not run.") == "neutral"
    assert nli_oracle("The dog ran.", "The dog ran in Paris.") == "neutral"
    assert nli_oracle("The dog did not run.", "The dog did not run in Paris.") == "entailment"
    assert nli_oracle("The dog ran.", "The dog did not run.") == "contradiction"
    assert nli_oracle("The dog ran in Paris.", "The dog ran in Rome.") == "contradiction"


def test_qa_oracle_on_hand_made_items() -> None:
    context = "The dog ran in Paris on 4 May 1990. Anna gave 3 red books to Tom."
    assert qa_oracle(context, "Where the dog ran on 4 May 1990?") == "Paris"
    assert qa_oracle(context, "When the dog ran in Paris?") == "4 May 1990"
    assert qa_oracle(context, "Who gave 3 red books to Tom?") == "Anna"
    assert qa_oracle(context, "How many red books Anna gave to Tom?") == "3"


def test_every_source_nli_pair_is_labelled_by_its_construction_rule(task_panel_dir: Path) -> None:
    for split in ("train", "dev", "test"):
        ds = load_task_dataset(task_panel_dir / "xnli" / SOURCE, "xnli", split=split)
        wrong = [(r["premise"], r["hypothesis"], r["label"]) for r in ds
                 if nli_oracle(r["premise"], r["hypothesis"]) != r["label"]]
        assert len(ds) >= 38 and not wrong, wrong[:3]


def test_every_source_qa_answer_is_recoverable_from_question_and_context(task_panel_dir: Path) -> None:
    for split in ("train", "dev", "test"):
        ds = load_task_dataset(task_panel_dir / "qa" / SOURCE, "qa", split=split)
        # lower-cased as SQuAD scoring does: when agent and patient are the same phrase ("Sness vast the sness")
        # either occurrence is the same answer
        wrong = [(r["question"], r["answers"]["text"][0]) for r in ds
                 if qa_oracle(r["context"], r["question"]).lower() != r["answers"]["text"][0].lower()]
        assert len(ds) >= 38 and not wrong, wrong[:3]
