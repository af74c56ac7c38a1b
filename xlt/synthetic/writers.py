"""Per-task writers: the synthetic panel's files in the real formats the readers parse.

:class:`_Generator` writes one task at a time for every language (MLM text, CoNLL-U, CoNLL NER, XNLI and
PAWS-X TSV, SQuAD JSON, line-aligned Tatoeba files) and counts what it wrote for the manifest. Task files
are parallel across languages (example i realises the same meaning everywhere); MLM text is not. Sizes
scale with ``scale`` (MLM bucket sizes) and ``task_scale`` (:data:`TASK_SIZES`, :data:`TATOEBA_SIZE`; default
``scale``) through :func:`scaled_size`, with floors so that tiny scales still give usable dev and test sets. Every
file draws from its own seeded stream, so the MLM text does not depend on ``task_scale``.
"""

from __future__ import annotations

import hashlib
import json
from itertools import accumulate
from pathlib import Path

from xlt.synthetic.grammar import Realisation
from xlt.synthetic.meanings import _PROFILES, Sentence
from xlt.synthetic.specs import BUCKET_SENTENCES, SOURCE, SPECS
from xlt.synthetic.task_meanings import NLI_LABELS, _askable, _nli_pair, _paws_pair, _question_for, _tatoeba
from xlt.synthetic.world import World

#: Examples per split of every task file at ``scale=1.0`` (questions for QA, pairs for NLI/PAWS-X).
TASK_SIZES = {"train": 600, "dev": 150, "test": 150}
TATOEBA_SIZE = 1000
MIN_EVAL_EXAMPLES = 20
MIN_MLM_LINES = 10
SPLITS = ("train", "dev", "test")


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


def scaled_size(base: int, scale: float, minimum: int) -> int:
    """``base`` examples times ``scale``, rounded, and at least ``minimum``."""
    return max(minimum, round(base * scale))


class _Generator:
    def __init__(self, root: Path, seed: int, scale: float, task_scale: float | None = None) -> None:
        self.root, self.seed, self.scale = root, seed, scale
        self.task_scale = scale if task_scale is None else task_scale
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
            n = scaled_size(BUCKET_SENTENCES[spec.bucket], self.scale, MIN_MLM_LINES)
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
            n = scaled_size(TASK_SIZES[split], self.task_scale, MIN_EVAL_EXAMPLES)
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
            n = scaled_size(TASK_SIZES[split], self.task_scale, MIN_EVAL_EXAMPLES)
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
            n = scaled_size(TASK_SIZES[split], self.task_scale, MIN_EVAL_EXAMPLES)
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
            n = scaled_size(TASK_SIZES[split], self.task_scale, MIN_EVAL_EXAMPLES)
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
        n = scaled_size(TATOEBA_SIZE, self.task_scale, MIN_EVAL_EXAMPLES)
        _, texts = _tatoeba(self.world, n)
        source = "".join(t + "\n" for t in texts[SOURCE])
        for code in self.codes:
            if code != SOURCE:
                stem = f"tatoeba/tatoeba.{code}-{SOURCE}"
                self.put(f"{stem}.{code}", "".join(t + "\n" for t in texts[code]), n)
                self.put(f"{stem}.{SOURCE}", source, n)
