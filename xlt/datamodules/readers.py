"""Readers of the real task formats, one schema per task for local files and Hugging Face hub datasets.

Every reader returns a :class:`datasets.Dataset` with the schema of its task (:data:`TASK_FEATURES`):

* ``ud``: ``tokens`` list[str], ``upos`` list[str] (17-tag UD set), ``heads`` list[int32] (1-based,
  0 = root), ``deprels`` list[str]; word lines only (multiword ranges ``3-4``, empty nodes ``8.1`` skipped);
* ``ner``: ``tokens`` list[str], ``ner_tags`` list[str] (IOB2 strings such as ``B-PER``);
* ``nli``: ``premise`` str, ``hypothesis`` str, ``label`` str (``entailment|neutral|contradiction``);
* ``pawsx``: ``sentence1`` str, ``sentence2`` str, ``label`` int64 (1 = paraphrase);
* ``qa``: ``id``, ``title``, ``context``, ``question`` str; ``answers`` {``text``: list[str],
  ``answer_start``: list[int32]} (character offsets into ``context``), one row per question;
* ``retrieval``: ``source`` str, ``target`` str (line-aligned translations).

:func:`load_task_dataset` is the single entry point used by the task data modules: an existing file is
parsed by the file reader of its task; an existing directory is searched for the split's file (UD, MasakhaNER,
AmericasNLI, XNLI, PAWS-X, XQuAD, Tatoeba and synthetic-panel layouts) and otherwise loaded as a local
dataset repository; anything else is a hub id given to :func:`datasets.load_dataset` (Parquet/JSON/CSV
repositories; datasets >= 4 runs no loading scripts). Hub and local-repository columns are mapped onto the
same schema (ClassLabel ids become tag names, UD multiword rows are dropped, ``dev`` falls back to
``validation``).

User mistakes (missing file, malformed line, bytes that are not UTF-8) raise :class:`~xlt.errors.XltError`
naming the file and the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, Features, List, Value

from xlt.errors import DataNotFound, XltError
from xlt.hub import meant_as_path
from xlt.languages import to_iso639_3

__all__ = [
    "NLI_LABELS", "TASK_FEATURES", "UPOS_TAGS", "load_task_dataset", "read_conll_ner", "read_conllu",
    "read_nli_tsv", "read_pawsx_tsv", "read_squad_json", "read_tatoeba", "task_name",
]

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")
NLI_LABELS = ("entailment", "neutral", "contradiction")

_STR = Value("string")
TASK_FEATURES: dict[str, Features] = {
    "ud": Features({"tokens": List(_STR), "upos": List(_STR), "heads": List(Value("int32")),
                    "deprels": List(_STR)}),
    "ner": Features({"tokens": List(_STR), "ner_tags": List(_STR)}),
    "nli": Features({"premise": _STR, "hypothesis": _STR, "label": _STR}),
    "pawsx": Features({"sentence1": _STR, "sentence2": _STR, "label": Value("int64")}),
    "qa": Features({"id": _STR, "title": _STR, "context": _STR, "question": _STR,
                    "answers": {"text": List(_STR), "answer_start": List(Value("int32"))}}),
    "retrieval": Features({"source": _STR, "target": _STR}),
}
_TASK_ALIASES = {
    "ud": "ud", "udpos": "ud", "pos": "ud", "upos": "ud", "dep": "ud", "conllu": "ud",
    "ner": "ner", "panx": "ner", "masakhaner": "ner",
    "nli": "nli", "xnli": "nli", "americasnli": "nli",
    "pawsx": "pawsx", "paws-x": "pawsx", "paraphrase": "pawsx",
    "qa": "qa", "squad": "qa", "xquad": "qa", "mlqa": "qa", "tydiqa": "qa",
    "retrieval": "retrieval", "tatoeba": "retrieval", "bitext": "retrieval",
}
_UPOS = frozenset(UPOS_TAGS)
_TAG = re.compile(r"^(O|[BI]-[A-Za-z][A-Za-z0-9_]*)$")
_LABEL_ALIASES = {"contradictory": "contradiction"}


def task_name(task: str) -> str:
    """The canonical task name (``ud``, ``ner``, ``nli``, ``pawsx``, ``qa``, ``retrieval``) of an alias."""
    canonical = _TASK_ALIASES.get(str(task).lower())
    if canonical is None:
        raise XltError(f"unknown task '{task}' — use one of: {', '.join(sorted(set(_TASK_ALIASES)))}")
    return canonical


# --------------------------------------------------------------------------------------------------
# Local files
# --------------------------------------------------------------------------------------------------


def _read_lines(path: str | Path) -> list[str]:
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


def _tsv_rows(lines: list[str], first: int, width: int, path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty TSV lines; a line with another field count is an XltError."""
    for lineno, line in enumerate(lines, first):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise XltError(f"{path}:{lineno}: expected {width} tab-separated fields, found {len(fields)} — "
                           "fix the line (fields may not contain tabs or newlines)")
        yield lineno, fields


def _dataset(columns: dict[str, list], task: str, where: str) -> Dataset:
    if not next(iter(columns.values())):
        raise XltError(f"{where} contains no examples — check the file (is it empty or of another format?)")
    return Dataset.from_dict(columns, features=TASK_FEATURES[task])


def read_conllu(path: str | Path) -> Dataset:
    """Read a CoNLL-U file into the ``ud`` schema (tokens, upos, heads, deprels).

    Comment lines are skipped, as are multiword-token ranges (``3-4``) and empty nodes (``8.1``); word ids
    must run 1..n in each sentence, HEAD must be an integer in 0..n, UPOS one of the 17 UD tags. A final
    sentence without its terminating blank line is accepted.
    """
    lines = _read_lines(path)
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
    return _dataset(cols, "ud", str(path))


def read_conll_ner(path: str | Path) -> Dataset:
    """Read a CoNLL NER file (``token TAG`` per line, blank line between sentences) into the ``ner`` schema.

    The tag is the last whitespace-separated field and the token the first (CoNLL-2003's four columns work
    too); ``-DOCSTART-`` lines are skipped. Tags must look like IOB2 (``O``, ``B-X``, ``I-X``); sequence
    slips such as an ``I-`` without a preceding ``B-`` are kept as they are (scorers handle them).
    """
    lines = _read_lines(path)
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
    return _dataset(cols, "ner", str(path))


def _header_index(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _nli_label(value: str, path: Path | str, lineno: int) -> str:
    label = _LABEL_ALIASES.get(value.strip().lower(), value.strip().lower())
    if label not in NLI_LABELS:
        raise XltError(f"{path}:{lineno}: label '{value}' is not one of {', '.join(NLI_LABELS)}")
    return label


def read_nli_tsv(path: str | Path, language: str | None = None) -> Dataset:
    """Read an NLI TSV file into the ``nli`` schema (premise, hypothesis, label).

    Handles the headerless three-column XNLI layout (``premise hypothesis label``, e.g. German XNLI), and
    headered files whose header names the columns (AmericasNLI ``id language premise hypothesis label``,
    XNLI-1.0 ``language gold_label ... sentence1 sentence2``, XNLI-MT ``premise hypo label``). Fields are
    split on tabs with no quote processing (``csv.QUOTE_NONE``); ``contradictory`` is read as
    ``contradiction``. With ``language`` and a language column, only that language's rows are kept.
    """
    lines = _read_lines(path)
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
    for lineno, fields in _tsv_rows(body, first, width, path):
        if want and lang_idx is not None and to_iso639_3(fields[lang_idx]) != want:
            continue
        cols["premise"].append(fields[p_idx])
        cols["hypothesis"].append(fields[h_idx])
        cols["label"].append(_nli_label(fields[l_idx], path, lineno))
    return _dataset(cols, "nli", str(path))


def read_pawsx_tsv(path: str | Path) -> Dataset:
    """Read a PAWS-X TSV file into the ``pawsx`` schema (sentence1, sentence2, label int).

    The header ``id sentence1 sentence2 label`` is expected (PAWS-X releases); headerless files with three
    (``sentence1 sentence2 label``) or four columns are read positionally. Labels must be 0 or 1.
    """
    lines = _read_lines(path)
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
    for lineno, fields in _tsv_rows(body, first, width, path):
        if fields[lab].strip() not in ("0", "1"):
            raise XltError(f"{path}:{lineno}: label '{fields[lab]}' is not 0 or 1")
        cols["sentence1"].append(fields[s1])
        cols["sentence2"].append(fields[s2])
        cols["label"].append(int(fields[lab]))
    return _dataset(cols, "pawsx", str(path))


def read_squad_json(path: str | Path, check_answers: bool = True) -> Dataset:
    """Read a SQuAD v1.1 JSON file (XQuAD, MLQA, TyDi QA GoldP) into the ``qa`` schema, one row per question.

    With ``check_answers`` every answer text must occur in the context at its ``answer_start``.
    """
    path = Path(path)
    lines = _read_lines(path)
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
    return _dataset(cols, "qa", str(path))


def read_tatoeba(src_path: str | Path, tgt_path: str | Path) -> Dataset:
    """Read two line-aligned files (line i of each are translations) into the ``retrieval`` schema."""
    source, target = _read_lines(src_path), _read_lines(tgt_path)
    if len(source) != len(target):
        raise XltError(f"{src_path} has {len(source)} lines but {tgt_path} has {len(target)} — "
                       "line-aligned files must have the same number of lines")
    return _dataset({"source": source, "target": target}, "retrieval", str(src_path))


# --------------------------------------------------------------------------------------------------
# Dispatch: local file, local directory, hub dataset
# --------------------------------------------------------------------------------------------------

_SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}
_DATA_SUFFIXES = (".conllu", ".txt", ".tsv", ".json", ".jsonl", ".csv", ".parquet", ".arrow")


def _same_language(code: str, language: str) -> bool:
    return code == language or to_iso639_3(code) == to_iso639_3(language)


def _tatoeba_pair(directory: Path, language: str | None) -> tuple[Path, Path] | None:
    pairs = []
    for path in sorted(directory.glob("tatoeba.*-*.*")):
        m = re.match(r"^tatoeba\.([^.-]+)-([^.-]+)\.([^.]+)$", path.name)
        if m and m.group(3) == m.group(1):
            other = path.with_name(f"tatoeba.{m.group(1)}-{m.group(2)}.{m.group(2)}")
            if other.is_file():
                pairs.append((m.group(1), path, other))
    if language is None:
        if len(pairs) == 1:
            return pairs[0][1], pairs[0][2]
        if pairs:
            raise XltError(f"{directory} holds Tatoeba pairs for {', '.join(p[0] for p in pairs)} — "
                           "pass a language")
        return None
    for code, src, tgt in pairs:
        if _same_language(code, language):
            return src, tgt
    return None


def _find_split_file(directory: Path, task: str, split: str, language: str | None) -> Path | None:
    """The file of ``split`` (and ``language``) in a local data directory, or None."""
    patterns = {
        "ud": [f"{split}.conllu", f"*-ud-{split}.conllu", f"*{split}*.conllu"],
        "ner": [f"{split}.txt", f"{split}.conll"],
        "nli": [f"{split}.tsv", f"{split}.txt", f"{split}/{{lang}}.tsv", f"*.{split}.{{lang}}.tsv"],
        "pawsx": [f"{split}.tsv", f"{split}_2k.tsv"],
        "qa": [f"{split}.json", "*.{lang}.json", f"*{split}*.{{lang}}.json"],
    }[task]
    for pattern in patterns:
        if "{lang}" in pattern:
            if language is None:
                candidates = sorted(directory.glob(pattern.replace("{lang}", "*")))
                if len(candidates) > 1:
                    raise XltError(f"{directory} holds several {task} files for split '{split}' "
                                   f"({', '.join(c.name for c in candidates[:6])}) — pass a language")
                if candidates:
                    return candidates[0]
                continue
            for candidate in sorted(directory.glob(pattern.replace("{lang}", "*"))):
                code = candidate.name.split(".")[-2] if candidate.name.count(".") >= 2 else candidate.stem
                if _same_language(code, language):
                    return candidate
            continue
        candidates = sorted(directory.glob(pattern))
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise XltError(f"{directory} holds several files matching {pattern}: "
                           f"{', '.join(c.name for c in candidates[:6])} — pass the file path")
    return None


def _read_file(path: Path, task: str, language: str | None, target: str | Path | None) -> Dataset:
    if task == "ud":
        return read_conllu(path)
    if task == "ner":
        return read_conll_ner(path)
    if task == "nli":
        return read_nli_tsv(path, language=language)
    if task == "pawsx":
        return read_pawsx_tsv(path)
    if task == "qa":
        return read_squad_json(path)
    if target is None:
        m = re.match(r"^(.*\.)([^.-]+)-([^.-]+)\.([^.]+)$", path.name)
        if not m or m.group(4) not in (m.group(2), m.group(3)):
            raise XltError(f"{path}: cannot tell the other side of this retrieval pair — pass target=<file>")
        other = m.group(3) if m.group(4) == m.group(2) else m.group(2)
        target = path.with_name(f"{m.group(1)}{m.group(2)}-{m.group(3)}.{other}")
    return read_tatoeba(path, target)


def load_task_dataset(source: str | Path, task: str, split: str = "test", language: str | None = None,
                      name: str | None = None, target: str | Path | None = None,
                      columns: dict[str, str] | None = None) -> Dataset:
    """Load one split of a task from a local file, a local data directory or a hub dataset.

    Args:
        source: a file (parsed by the task's reader), a directory (searched for the split's file, e.g.
            ``ud/eng`` -> ``en_ewt-ud-test.conllu``, ``nli/americasnli`` -> ``test/<language>.tsv``,
            ``qa/xquad`` -> ``xquad.<language>.json``, ``tatoeba`` -> ``tatoeba.<language>-eng.*``; a
            directory without such files is loaded as a local dataset repository), or a hub dataset id.
        task: ``ud`` (alias ``udpos``), ``ner``, ``nli`` (``xnli``), ``pawsx``, ``qa`` or ``retrieval``
            (``tatoeba``).
        split: ``train``, ``dev`` (``validation``) or ``test``; ignored when ``source`` is a file.
        language: language to select in a directory, or in a file or hub dataset with a language column
            (ISO 639-3 or the dataset's own code).
        name: hub dataset configuration (e.g. ``de`` for PAWS-X).
        target: for ``retrieval`` from a file: the other side (default: derived from the Tatoeba name).
        columns: hub column renames, our name -> theirs (e.g. ``{"source": "sentence1"}``).

    Returns:
        A dataset with the task's schema (:data:`TASK_FEATURES`).
    """
    task = task_name(task)
    local_split = _SPLIT_ALIASES.get(split, split)
    path = Path(source).expanduser()
    if path.is_file():
        return _read_file(path, task, language, target)
    if path.is_dir():
        if task == "retrieval":
            pair = _tatoeba_pair(path, language)
            if pair is not None:
                return read_tatoeba(*pair)
        else:
            found = _find_split_file(path, task, local_split, language)
            if found is not None:
                return _read_file(found, task, language, target)
        if (path / "dataset_dict.json").is_file() or any(path.glob("**/*.parquet")):
            return _load_hub(str(path), task, split, language, name, columns)
        raise DataNotFound(f"no {task} file for split '{local_split}'"
                       f"{f' and language {language}' if language else ''} in {path} — "
                       "check the directory, split and language")
    text = str(source)
    if text.endswith(_DATA_SUFFIXES) or meant_as_path(text):  # e.g. a typo in data/<name>
        raise DataNotFound(f"data file {source} not found — check the path (or XLT_DATA_DIR)")
    return _load_hub(text, task, split, language, name, columns)


_HUB_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "ud": {"tokens": ("tokens", "words", "form"), "upos": ("upos", "pos_tags", "pos"),
           "heads": ("heads", "head"), "deprels": ("deprels", "deprel")},
    "ner": {"tokens": ("tokens", "words"), "ner_tags": ("ner_tags", "tags", "labels", "ner")},
    "nli": {"premise": ("premise", "sentence1"), "hypothesis": ("hypothesis", "hypo", "sentence2"),
            "label": ("label", "gold_label", "labels")},
    "pawsx": {"sentence1": ("sentence1",), "sentence2": ("sentence2",), "label": ("label", "labels")},
    "qa": {"id": ("id",), "title": ("title",), "context": ("context",), "question": ("question",),
           "answers": ("answers",)},
    "retrieval": {"source": ("source", "sentence1", "src"), "target": ("target", "sentence2", "tgt")},
}


def _label_names(feature: Any) -> list[str] | None:
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    return None


def _load_hub(source: str, task: str, split: str, language: str | None, name: str | None,
              columns: dict[str, str] | None) -> Dataset:
    """``datasets.load_dataset`` (hub id or local dataset repository), then the column mapping."""
    splits = [split] + (["validation"] if split == "dev" else ["dev"] if split == "validation" else [])
    error: Exception | None = None
    ds = None
    for candidate in splits:
        try:
            if (Path(source) / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk layout
                saved = datasets.load_from_disk(source)
                if candidate not in saved:
                    error = ValueError(f"unknown split {candidate!r}; available: {list(saved)}")
                    continue
                ds = saved[candidate]
            else:
                ds = datasets.load_dataset(source, name, split=candidate)
            break
        except ValueError as exc:  # an unknown split: try its alias
            error = exc
            if "split" not in str(exc).lower():
                break
        except Exception as exc:  # hub, network and format errors all mean: this source cannot be loaded
            error = exc
            break
    if ds is None:
        first = str(error).strip().splitlines()[0] if error and str(error).strip() else type(error).__name__
        raise XltError(f"dataset '{source}' (config {name}, split {split}) could not be loaded: {first} — "
                       "check the id, config and split, or pass a local file")
    return normalise_dataset(ds, task, language=language, columns=columns, where=source)


def normalise_dataset(ds: Dataset, task: str, language: str | None = None,
                      columns: dict[str, str] | None = None, where: str = "dataset") -> Dataset:
    """Map a hub-style dataset onto the task's schema (column names, ClassLabel ids, UD multiword rows)."""
    task = task_name(task)
    if language:
        lang_col = next((c for c in ("language", "lang") if c in ds.column_names), None)
        if lang_col is not None:
            ds = ds.filter(lambda v: _same_language(str(v), language), input_columns=lang_col)
    mapping: dict[str, str] = {}
    for ours, aliases in _HUB_COLUMNS[task].items():
        theirs = (columns or {}).get(ours) or next((a for a in aliases if a in ds.column_names), None)
        if theirs is not None and theirs not in ds.column_names:
            theirs = None
        if theirs is None and not (task == "qa" and ours == "title"):
            raise XltError(f"{where} has columns {ds.column_names}, none of them is '{ours}' — "
                           f"pass columns={{'{ours}': '<column>'}}")
        if theirs is not None:
            mapping[ours] = theirs
    names = {ours: _label_names(ds.features[theirs]) for ours, theirs in mapping.items()}
    convert = _CONVERTERS[task]

    def batch_fn(batch: dict[str, list]) -> dict[str, list]:
        n = len(next(iter(batch.values())))
        out: dict[str, list] = {k: [] for k in TASK_FEATURES[task]}
        for i in range(n):
            row = {ours: batch[theirs][i] for ours, theirs in mapping.items()}
            for ours, label_names in names.items():
                if label_names is not None:
                    row[ours] = _decode(row[ours], label_names)
            record = convert(row)
            if record is not None:
                for k in out:
                    out[k].append(record[k])
        return out

    return ds.map(batch_fn, batched=True, remove_columns=ds.column_names, features=TASK_FEATURES[task])


def _decode(value: Any, label_names: list[str]) -> Any:
    if isinstance(value, list):
        return [label_names[v] if isinstance(v, int) and 0 <= v < len(label_names) else v for v in value]
    return label_names[value] if isinstance(value, int) and 0 <= value < len(label_names) else value


def _ud_row(row: dict) -> dict | None:
    heads, upos = row["heads"], row["upos"]
    keep = [i for i, h in enumerate(heads) if h not in (None, "None", "_", "") and upos[i] != "_"]
    return {"tokens": [row["tokens"][i] for i in keep], "upos": [row["upos"][i] for i in keep],
            "heads": [int(row["heads"][i]) for i in keep], "deprels": [row["deprels"][i] for i in keep]}


def _nli_row(row: dict) -> dict | None:
    label = row["label"]
    if isinstance(label, int):
        if not 0 <= label < 3:
            return None  # -1: unlabelled
        label = NLI_LABELS[label]
    label = _LABEL_ALIASES.get(str(label).lower(), str(label).lower())
    return {"premise": row["premise"], "hypothesis": row["hypothesis"], "label": label}


def _qa_row(row: dict) -> dict:
    answers = row["answers"]
    if isinstance(answers, list):  # raw SQuAD: a list of {text, answer_start}
        answers = {"text": [a["text"] for a in answers], "answer_start": [a["answer_start"] for a in answers]}
    return {"id": str(row["id"]), "title": row.get("title") or "", "context": row["context"],
            "question": row["question"], "answers": {"text": list(answers["text"]),
                                                     "answer_start": list(answers["answer_start"])}}


_CONVERTERS: dict[str, Callable[[dict], dict | None]] = {
    "ud": _ud_row,
    "ner": lambda row: {"tokens": row["tokens"], "ner_tags": row["ner_tags"]},
    "nli": _nli_row,
    "pawsx": lambda row: {"sentence1": row["sentence1"], "sentence2": row["sentence2"],
                          "label": int(row["label"])},
    "qa": _qa_row,
    "retrieval": lambda row: {"source": row["source"], "target": row["target"]},
}
