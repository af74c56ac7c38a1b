"""Parsers of the real data formats, shared by the task data modules, the tokenizer audit and tests.

Each parser reads one file into a :class:`datasets.Dataset` with the schema of its format:

* CoNLL-U (:func:`read_conllu`, :data:`CONLLU_FEATURES`): ``tokens`` list[str], ``upos`` list[str] (17-tag UD
  set, :data:`UPOS_TAGS`), ``heads`` list[int32] (1-based, 0 = root), ``deprels`` list[str]; word lines only
  (multiword ranges ``3-4``, empty nodes ``8.1`` skipped);
* CoNLL NER (:func:`read_conll_ner`, :data:`CONLL_NER_FEATURES`): ``tokens`` list[str], ``ner_tags`` list[str]
  (IOB2 strings such as ``B-PER``);
* NLI TSV (:func:`read_nli_tsv`, :data:`NLI_FEATURES`): ``premise`` str, ``hypothesis`` str, ``label`` str
  (:data:`NLI_LABELS`: ``entailment|neutral|contradiction``);
* PAWS-X TSV (:func:`read_pawsx_tsv`, :data:`PAWSX_FEATURES`): ``sentence1`` str, ``sentence2`` str, ``label``
  int64 (1 = paraphrase);
* SQuAD v1.1 JSON (:func:`read_squad_json`, :data:`SQUAD_FEATURES`): ``id``, ``title``, ``context``,
  ``question`` str; ``answers`` {``text``: list[str], ``answer_start``: list[int32]} (character offsets into
  ``context``), one row per question;
* line-aligned bitext (:func:`read_tatoeba`, :data:`BITEXT_FEATURES`): ``source`` str, ``target`` str.

Which task reads which format, where a task's files lie and how hub datasets map onto a schema is declared by
the task (:class:`~xlt.datamodules.task_spec.TaskSpec`); this module imports no data module.

User mistakes (missing file, malformed line, bytes that are not UTF-8) raise :class:`~xlt.errors.XltError`
naming the file and the line (a missing file: :class:`~xlt.errors.DataNotFound`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value

from xlt.errors import DataNotFound, XltError
from xlt.languages import to_iso639_3

__all__ = [
    "BITEXT_FEATURES", "CONLLU_FEATURES", "CONLL_NER_FEATURES", "NLI_FEATURES", "NLI_LABELS", "PAWSX_FEATURES",
    "SQUAD_FEATURES", "UPOS_TAGS", "nli_label_name", "read_conll_ner", "read_conllu", "read_lines",
    "read_nli_tsv", "read_pawsx_tsv", "read_squad_json", "read_tatoeba", "tsv_rows",
]

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")
"""The 17 universal part-of-speech tags of Universal Dependencies (the UPOS column of CoNLL-U)."""
NLI_LABELS = ("entailment", "neutral", "contradiction")
"""The labels of NLI TSV files, in XNLI's label-id order."""
NLI_LABEL_ALIASES = {"contradictory": "contradiction"}
"""Other spellings of :data:`NLI_LABELS` found in datasets (lowercase)."""

_STR = Value("string")
CONLLU_FEATURES = Features({"tokens": List(_STR), "upos": List(_STR), "heads": List(Value("int32")),
                            "deprels": List(_STR)})
CONLL_NER_FEATURES = Features({"tokens": List(_STR), "ner_tags": List(_STR)})
NLI_FEATURES = Features({"premise": _STR, "hypothesis": _STR, "label": _STR})
PAWSX_FEATURES = Features({"sentence1": _STR, "sentence2": _STR, "label": Value("int64")})
SQUAD_FEATURES = Features({"id": _STR, "title": _STR, "context": _STR, "question": _STR,
                           "answers": {"text": List(_STR), "answer_start": List(Value("int32"))}})
BITEXT_FEATURES = Features({"source": _STR, "target": _STR})
_UPOS = frozenset(UPOS_TAGS)
_TAG = re.compile(r"^(O|[BI]-[A-Za-z][A-Za-z0-9_]*)$")


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (BOM and CR tolerated); XltError naming file and line on bad bytes."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise DataNotFound(f"data file {path} {what} — check the path (or XLT_DATA_DIR)")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise XltError(f"{path}:{line}: byte 0x{data[exc.start]:02x} at column {column} is not valid UTF-8 — "
                       "re-encode the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")  # not splitlines(): U+2028, U+0085 etc. may occur inside sentences
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def tsv_rows(lines: list[str], first: int, width: int, path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty TSV lines; a line with another field count is an XltError."""
    for lineno, line in enumerate(lines, first):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise XltError(f"{path}:{lineno}: expected {width} tab-separated fields, found {len(fields)} — "
                           "fix the line (fields may not contain tabs or newlines)")
        yield lineno, fields


def _dataset(columns: dict[str, list], features: Features, where: str) -> Dataset:
    if not next(iter(columns.values())):
        raise XltError(f"{where} contains no examples — check the file (is it empty or of another format?)")
    return Dataset.from_dict(columns, features=features)


def read_conllu(path: str | Path) -> Dataset:
    """Read a CoNLL-U file into :data:`CONLLU_FEATURES` (tokens, upos, heads, deprels).

    Comment lines are skipped, as are multiword-token ranges (``3-4``) and empty nodes (``8.1``); word ids
    must run 1..n in each sentence, HEAD must be an integer in 0..n, UPOS one of the 17 UD tags. A final
    sentence without its terminating blank line is accepted.
    """
    lines = read_lines(path)
    cols: dict[str, list] = {"tokens": [], "upos": [], "heads": [], "deprels": []}
    tokens: list[str] = []
    upos: list[str] = []
    heads: list[int] = []
    deprels: list[str] = []
    start = 0

    def flush() -> None:
        n = len(tokens)
        for i, head in enumerate(heads):
            if head > n:
                raise XltError(f"{path}:{start + i}: HEAD {head} points past the sentence's {n} words — "
                               "fix the CoNLL-U file")
        cols["tokens"].append(list(tokens))
        cols["upos"].append(list(upos))
        cols["heads"].append(list(heads))
        cols["deprels"].append(list(deprels))
        tokens.clear(), upos.clear(), heads.clear(), deprels.clear()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if tokens:
                flush()
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise XltError(f"{path}:{lineno}: expected 10 tab-separated CoNLL-U columns, found "
                           f"{len(fields)} — fix the line (CoNLL-U uses tabs, not spaces)")
        wid = fields[0]
        if "-" in wid or "." in wid:
            parts = re.split(r"[-.]", wid)
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise XltError(f"{path}:{lineno}: malformed token id '{wid}' — use n, n-m or n.k")
            continue
        if not wid.isdigit():
            raise XltError(f"{path}:{lineno}: malformed token id '{wid}' — use n, n-m or n.k")
        if not tokens:
            start = lineno
        if int(wid) != len(tokens) + 1:
            raise XltError(f"{path}:{lineno}: word id {wid} out of sequence (expected {len(tokens) + 1}) — "
                           "separate sentences by a blank line")
        if fields[3] not in _UPOS:
            raise XltError(f"{path}:{lineno}: UPOS '{fields[3]}' is not one of the 17 UD tags")
        if not fields[6].isdigit():
            raise XltError(f"{path}:{lineno}: HEAD '{fields[6]}' is not an integer")
        tokens.append(fields[1])
        upos.append(fields[3])
        heads.append(int(fields[6]))
        deprels.append(fields[7])
    if tokens:
        flush()
    return _dataset(cols, CONLLU_FEATURES, str(path))


def read_conll_ner(path: str | Path) -> Dataset:
    """Read a CoNLL NER file (``token TAG`` per line, blank line between sentences) into :data:`CONLL_NER_FEATURES`.

    The tag is the last whitespace-separated field and the token the first (CoNLL-2003's four columns work
    too); ``-DOCSTART-`` lines are skipped. Tags must look like IOB2 (``O``, ``B-X``, ``I-X``); sequence
    slips such as an ``I-`` without a preceding ``B-`` are kept as they are (scorers handle them).
    """
    lines = read_lines(path)
    cols: dict[str, list] = {"tokens": [], "ner_tags": []}
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            if tokens:
                cols["tokens"].append(tokens)
                cols["ner_tags"].append(tags)
                tokens, tags = [], []
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2:
            raise XltError(f"{path}:{lineno}: expected 'token TAG', found {line.strip()!r}")
        if not _TAG.match(fields[-1]):
            raise XltError(f"{path}:{lineno}: tag '{fields[-1]}' is not an IOB2 tag (O, B-TYPE, I-TYPE)")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        cols["tokens"].append(tokens)
        cols["ner_tags"].append(tags)
    return _dataset(cols, CONLL_NER_FEATURES, str(path))


def _header_index(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def nli_label_name(value: str) -> str:
    """An NLI label as written in a dataset, lowercased, with ``contradictory`` read as ``contradiction``."""
    return NLI_LABEL_ALIASES.get(value.lower(), value.lower())


def _nli_label(value: str, path: Path | str, lineno: int) -> str:
    label = nli_label_name(value.strip())
    if label not in NLI_LABELS:
        raise XltError(f"{path}:{lineno}: label '{value}' is not one of {', '.join(NLI_LABELS)}")
    return label


def read_nli_tsv(path: str | Path, language: str | None = None) -> Dataset:
    """Read an NLI TSV file into :data:`NLI_FEATURES` (premise, hypothesis, label).

    Handles the headerless three-column XNLI layout (``premise hypothesis label``, e.g. German XNLI), and
    headered files whose header names the columns (AmericasNLI ``id language premise hypothesis label``,
    XNLI-1.0 ``language gold_label ... sentence1 sentence2``, XNLI-MT ``premise hypo label``). Fields are
    split on tabs with no quote processing (``csv.QUOTE_NONE``); ``contradictory`` is read as
    ``contradiction``. With ``language`` and a language column, only that language's rows are kept.
    """
    lines = read_lines(path)
    if not lines:
        raise XltError(f"{path} contains no examples — check the file")
    header = lines[0].split("\t")
    p_idx = _header_index(header, ("premise", "sentence1"))
    h_idx = _header_index(header, ("hypothesis", "hypo", "sentence2"))
    l_idx = _header_index(header, ("label", "gold_label"))
    if p_idx is not None or h_idx is not None:
        if p_idx is None or h_idx is None or l_idx is None:
            raise XltError(f"{path}:1: header {header} lacks a premise/hypothesis/label column")
        lang_idx = _header_index(header, ("language", "lang"))
        width, body, first = len(header), lines[1:], 2
    else:
        p_idx, h_idx, l_idx, lang_idx, width, body, first = 0, 1, 2, None, 3, lines, 1
    want = to_iso639_3(language) if language else None
    cols: dict[str, list] = {"premise": [], "hypothesis": [], "label": []}
    for lineno, fields in tsv_rows(body, first, width, path):
        if want and lang_idx is not None and to_iso639_3(fields[lang_idx]) != want:
            continue
        cols["premise"].append(fields[p_idx])
        cols["hypothesis"].append(fields[h_idx])
        cols["label"].append(_nli_label(fields[l_idx], path, lineno))
    return _dataset(cols, NLI_FEATURES, str(path))


def read_pawsx_tsv(path: str | Path) -> Dataset:
    """Read a PAWS-X TSV file into :data:`PAWSX_FEATURES` (sentence1, sentence2, label int).

    The header ``id sentence1 sentence2 label`` is expected (PAWS-X releases); headerless files with three
    (``sentence1 sentence2 label``) or four columns are read positionally. Labels must be 0 or 1.
    """
    lines = read_lines(path)
    if not lines:
        raise XltError(f"{path} contains no examples — check the file")
    header = lines[0].split("\t")
    s1, s2, lab = (_header_index(header, (n,)) for n in ("sentence1", "sentence2", "label"))
    if s1 is not None and s2 is not None and lab is not None:
        width, body, first = len(header), lines[1:], 2
    elif s1 is None and s2 is None and len(header) in (3, 4):
        width, body, first = len(header), lines, 1
        s1, s2, lab = (0, 1, 2) if width == 3 else (1, 2, 3)
    else:
        raise XltError(f"{path}:1: header {header} is not 'id sentence1 sentence2 label' — fix the file")
    cols: dict[str, list] = {"sentence1": [], "sentence2": [], "label": []}
    for lineno, fields in tsv_rows(body, first, width, path):
        if fields[lab].strip() not in ("0", "1"):
            raise XltError(f"{path}:{lineno}: label '{fields[lab]}' is not 0 or 1")
        cols["sentence1"].append(fields[s1])
        cols["sentence2"].append(fields[s2])
        cols["label"].append(int(fields[lab]))
    return _dataset(cols, PAWSX_FEATURES, str(path))


def read_squad_json(path: str | Path, check_answers: bool = True) -> Dataset:
    """Read a SQuAD v1.1 JSON file (XQuAD, MLQA, TyDi QA GoldP) into :data:`SQUAD_FEATURES`, one row per question.

    With ``check_answers`` every answer text must occur in the context at its ``answer_start``.
    """
    path = Path(path)
    lines = read_lines(path)
    try:
        obj = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise XltError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}) — fix the file") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise XltError(f"{path}: not SQuAD JSON — expected an object with a 'data' list")
    cols: dict[str, list] = {"id": [], "title": [], "context": [], "question": [], "answers": []}

    def need(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        value = record.get(key) if isinstance(record, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise XltError(f"{path}: {where} lacks '{key}' ({expected}) — not SQuAD v1.1 JSON")
        return record[key]

    for a, article in enumerate(obj["data"]):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, para in enumerate(need(article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = need(para, "context", str, where)
            for q, qa in enumerate(need(para, "qas", list, where)):
                qwhere = f"{where}.qas[{q}]"
                texts, starts = [], []
                for k, ans in enumerate(need(qa, "answers", list, qwhere)):
                    text = need(ans, "text", str, f"{qwhere}.answers[{k}]")
                    start = need(ans, "answer_start", int, f"{qwhere}.answers[{k}]")
                    if check_answers and context[start:start + len(text)] != text:
                        raise XltError(f"{path}: answer {text!r} of question {qa.get('id')} is not at offset "
                                       f"{start} of its context — fix answer_start")
                    texts.append(text)
                    starts.append(start)
                cols["id"].append(str(need(qa, "id", (str, int), qwhere)))
                cols["title"].append(str(title))
                cols["context"].append(context)
                cols["question"].append(need(qa, "question", str, qwhere))
                cols["answers"].append({"text": texts, "answer_start": starts})
    return _dataset(cols, SQUAD_FEATURES, str(path))


def read_tatoeba(src_path: str | Path, tgt_path: str | Path) -> Dataset:
    """Read two line-aligned files (line i of each are translations) into :data:`BITEXT_FEATURES`."""
    source, target = read_lines(src_path), read_lines(tgt_path)
    if len(source) != len(target):
        raise XltError(f"{src_path} has {len(source)} lines but {tgt_path} has {len(target)} — "
                       "line-aligned files must have the same number of lines")
    return _dataset({"source": source, "target": target}, BITEXT_FEATURES, str(src_path))
