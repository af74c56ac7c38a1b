"""``xlt tokenizer audit``: the fixed text sample of each language, then the audit, its files and MLflow run.

:func:`discover_texts` and :func:`discover_ud` find per-language text of a local folder (``<code>.txt`` and the
synthetic panel's ``mlm/`` through :func:`xlt.sources.list_text_files`, Tatoeba pairs) and CoNLL-U files; the
corpus is a text source (:mod:`xlt.sources`; a hub dataset gives its rows). The sample is the first N distinct
non-blank lines (and N UD sentences' gold words) per language. :func:`audit_command` is the typed function behind
the command (its docstring is the ``--help``): it computes the rows (:func:`xlt.tokenization.audit.audit_tokenizers`)
and writes and logs them (:mod:`xlt.tokenization.audit_report`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt.errors import XltError
from xlt.languages import load_panel, to_iso639_3
from xlt.mlflow_store import stage_run
from xlt.sources import TextSource, as_text_source, list_text_files
from xlt.tokenization.audit import UNSAFE_NAME, AuditRow, audit_tokenizers, check_code
from xlt.tokenization.audit_report import MARKDOWN_FILE, log_audit_to_mlflow, write_audit

__all__ = ["audit_command", "discover_texts", "discover_ud"]

_TATOEBA = re.compile(r"^tatoeba\.([^.-]+)-([^.-]+)\.([^.]+)$")


def discover_texts(corpus: str | Path) -> dict[str, list[Path]]:
    """Text files per language (ISO 639-3) in a corpus directory, in reading order.

    Layouts: ``<corpus>/<code>.txt``; the synthetic panel's ``<corpus>/mlm/<code>.txt``; Tatoeba pairs
    ``tatoeba.<x>-<y>.<x>`` (and ``.<y>``) in ``<corpus>`` or ``<corpus>/tatoeba`` — both sides count, so
    the shared source side (``eng``) collects the lines of every pair. Dataset codes (``cmn``, ``swh``,
    ``en``) are mapped to ISO 639-3.
    """
    root = Path(corpus)
    if not root.exists():
        raise XltError(f"corpus directory {root} not found — give a directory of <code>.txt files "
                       "(or the synthetic panel / a Tatoeba directory)")
    if not root.is_dir():
        raise XltError(f"corpus {root} is a file — give a directory of <code>.txt files")
    found: dict[str, list[Path]] = {}
    for code, path in list_text_files(root).items():
        found.setdefault(to_iso639_3(code), []).append(path)
    for directory in (root, root / "tatoeba"):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("tatoeba.*")):
            m = _TATOEBA.match(path.name)
            if m and m[3] in (m[1], m[2]) and path.is_file():
                found.setdefault(to_iso639_3(m[3]), []).append(path)
    return found


def discover_ud(ud: str | Path) -> dict[str, list[Path]]:
    """CoNLL-U files per language: ``<ud>/<code>/*.conllu`` (sorted; codes mapped to ISO 639-3)."""
    root = Path(ud)
    if not root.is_dir():
        raise XltError(f"UD directory {root} not found — give a directory with <code>/*.conllu")
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.conllu"))
        if files:
            found.setdefault(to_iso639_3(sub.name), []).extend(files)
    if not found:
        raise XltError(f"UD directory {root} has no <code>/*.conllu files — check the path")
    return found


def _read_sample(paths: Sequence[Path], lang: str, limit: int) -> list[str]:
    """The first ``limit`` distinct non-blank lines of ``paths`` (in order)."""
    seen: dict[str, None] = {}
    for path in paths:
        with open(path, "rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                try:
                    text = raw.decode("utf-8").strip().removeprefix("\ufeff")
                except UnicodeDecodeError:
                    raise XltError(f"{path}:{lineno}: not valid UTF-8 — re-encode the file as UTF-8") from None
                if text:
                    seen[text] = None
                    if len(seen) >= limit:
                        return list(seen)
    if not seen:
        raise XltError(f"corpus file(s) {', '.join(map(str, paths))} for language '{lang}' are empty — "
                       "add text (one sentence per line) or drop the language")
    return list(seen)


def _dataset_sample(source: TextSource, lang: str, limit: int, cache_dir: Path) -> list[str]:
    """The first ``limit`` distinct non-blank rows of a dataset source's language (in order)."""
    seen: dict[str, None] = {}
    for row in source.dataset(lang, cache_dir):
        text = str(row[source.column] or "").strip().removeprefix("\ufeff")
        if text:
            seen[text] = None
            if len(seen) >= limit:
                break
    if not seen:
        raise XltError(f"{source.describe(lang)} for language '{lang}' has no text — check the corpus or drop "
                       "the language")
    return list(seen)


def _ud_texts(paths: Sequence[Path], limit: int) -> list[str]:
    """``# text = ...`` lines of CoNLL-U files (the sentences' surface text), at most ``limit``."""
    texts: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="strict").splitlines():
            if line.startswith("# text =") or line.startswith("# text="):
                texts.append(line.split("=", 1)[1].strip())
                if len(texts) >= limit:
                    return texts
    return texts


def _ud_sample(paths: Sequence[Path], limit: int) -> list[list[str]]:
    """Gold words of the first ``limit`` sentences (:func:`xlt.formats.read_conllu`)."""
    from xlt.formats import read_conllu

    sentences: list[list[str]] = []
    for path in paths:
        sentences += read_conllu(path)["tokens"][: limit - len(sentences)]
        if len(sentences) >= limit:
            break
    return sentences


def _load_tokenizer(path: str | Path) -> Any:
    from xlt.tokenization.tokenizer import XltTokenizer

    path = Path(path)
    if not path.is_dir():
        raise XltError(f"tokenizer directory {path} not found — fit one with `xlt tokenizer fit` or check the path")
    return XltTokenizer.load(path)  # language blocks (configuration d) included


def _tokenizer_names(paths: Sequence[str]) -> list[str]:
    resolved = [Path(p).resolve() for p in paths]
    repeated = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if repeated:
        raise XltError(f"tokenizer {repeated[0]} is listed more than once — list each tokenizer once")
    names = [UNSAFE_NAME.sub("_", p.name) for p in resolved]
    for i, p in enumerate(resolved):
        if names.count(names[i]) > 1:
            names[i] = UNSAFE_NAME.sub("_", f"{p.parent.name}_{p.name}")
    if len(set(names)) != len(names):
        raise XltError(f"tokenizer directories {list(paths)} have clashing names — rename one of them")
    return names


def audit_command(tokenizer: list[str] | None = None, corpus: TextSource | str = "synthetic",
                  panel: str | None = None, ud: str | None = None, languages: list[str] | None = None,
                  sample_lines: int = 1000, out: str = "runs/audit", experiment_name: str = "tokenizer-audit",
                  tracking_uri: str | None = None, mlflow: bool = True, run_name: str | None = None,
                  overwrite: bool = False, cache_dir: str = "runs/cache") -> list[AuditRow]:
    """Audit tokenizers side by side: a table (Markdown + CSV) and fertility plots in ``out``, logged to MLflow.

    Example: ``xlt tokenizer audit --tokenizer '[runs/tok_a, runs/tok_d]' --panel configs/panels/synthetic.yaml``.
    Per language: fertility (pieces per whitespace word, and per gold UD word), continued words, UNK and
    byte-fallback rates, mean sequence length, share of the vocabulary used, character coverage by script.

    Args:
        tokenizer: Tokenizer directories (required; a list such as ``'[runs/tok_a, runs/tok_d]'``); each is named
            after its directory.
        corpus: Text per language, a text source (xlt.sources), as for ``xlt tokenizer fit``:
            ``xlt.sources.SyntheticPanel`` (``seed``, ``scale``: the synthetic panel, generated into
            ``cache_dir`` once; ``--corpus SyntheticPanel --corpus.scale 0.5``, or ``--corpus.init_args.scale 0.5``
            over a config that gives the object), ``xlt.sources.TextDirectory`` (``path``: a
            directory of ``<code>.txt`` files; ``<dir>/mlm/<code>.txt`` and Tatoeba ``tatoeba.<x>-eng.<x>``
            files in ``<dir>`` or ``<dir>/tatoeba`` work too) or ``xlt.sources.HubText`` (``dataset``,
            ``config``, ``split``, ``column``: a hub dataset, one config per language; give ``languages`` or
            ``panel``). Short forms: ``synthetic``, a directory path, ``hf:<dataset_id>``.
        panel: Panel name or YAML path giving each language's script, bucket and family (default: the
            corpus's ``panel.yaml`` if it has one; without a panel the script is the text's dominant one and
            the bucket ``unknown``).
        ud: UD directory with ``<code>/*.conllu`` for gold-word fertility (default: ``<corpus>/ud`` if it
            exists). Languages with UD data but no corpus text are audited on the UD ``# text`` lines.
        languages: ISO 639-3 codes to audit (default: every language with text, within the panel if any).
        sample_lines: The fixed sample: first N distinct non-blank lines (and N UD sentences) per language.
        out: Output directory (``audit.md``, ``audit.csv``, ``fertility_by_script.png``,
            ``fertility_by_bucket.png``), written atomically.
        experiment_name: MLflow experiment of the audit run.
        tracking_uri: MLflow store (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        mlflow: Log the audit to MLflow (one run; metrics ``audit/<tokenizer>/<metric>/<lang>``).
        run_name: MLflow run name (default ``audit-<tokenizer names>``).
        overwrite: Replace an existing ``out`` directory.
        cache_dir: Default cache of a corpus that names none: where the synthetic panel is generated (shared
            with ``xlt tokenizer fit`` and the corpus DataModule); a hub dataset's download cache is
            ``<cache_dir>/hf``.

    Returns:
        The audit rows (one per tokenizer x language).
    """
    if isinstance(sample_lines, bool) or not isinstance(sample_lines, int) or sample_lines < 1:
        raise XltError(f"sample_lines {sample_lines!r} must be a positive integer — e.g. --sample_lines 1000")
    if not tokenizer:
        raise XltError("no tokenizer given — pass --tokenizer '[<dir>, <dir>, ...]'")
    if languages is not None and not languages:
        raise XltError("languages is empty — list at least one language code or leave it unset")
    out_dir = Path(out)
    if out_dir.exists() and not overwrite:
        raise XltError(f"output directory {out_dir} already exists — pass --overwrite true or choose another --out")
    the_panel = load_panel(panel) if panel else None
    if the_panel is not None:
        for code in languages or []:
            the_panel.get(code)  # XltError naming the panel and its codes
    names = _tokenizer_names(tokenizer)
    tokenizers = {name: _load_tokenizer(path) for name, path in zip(names, tokenizer, strict=True)}

    source = as_text_source(corpus, cache_dir)
    source.prepare()  # the synthetic panel: generated once into its cache
    corpus_dir = source.local_dir()
    if corpus_dir is not None:  # a local folder: <code>.txt files (and Tatoeba pairs, panel.yaml, ud/)
        text_files = discover_texts(corpus_dir)
        if the_panel is None and (corpus_dir / "panel.yaml").is_file():
            the_panel = load_panel(corpus_dir / "panel.yaml")
        if ud is None and (corpus_dir / "ud").is_dir():
            ud = str(corpus_dir / "ud")
        text_languages = set(text_files)
    else:  # rows of a dataset per language (a hub dataset): the languages named, or the panel's
        text_files = {}
        if languages is None and the_panel is None:
            raise XltError(f"{source} cannot list its languages — pass --languages or --panel")
        text_languages = set(languages if languages is not None else the_panel.codes)  # type: ignore[union-attr]
    ud_files = discover_ud(ud) if ud is not None else {}
    available = text_languages | set(ud_files)
    text_from = corpus_dir if corpus_dir is not None else source  # in messages, notes and the run's parameters
    where = f"{text_from}" + (f" or {ud}" if ud else "")
    if languages:
        for code in languages:
            check_code(code, the_panel)
        missing = [c for c in languages if c not in available]
        if missing:
            raise XltError(f"no text for language '{missing[0]}' in {where} — add {corpus_dir}/{missing[0]}.txt "
                           "or drop it from --languages")
        chosen = list(dict.fromkeys(languages))
    elif the_panel is not None:
        chosen = [c for c in the_panel.codes if c in available]
        skipped = sorted(available - set(the_panel.codes))
        if skipped:
            print(f"xlt: note: skipping language(s) not in panel '{the_panel.name}': {', '.join(skipped)}",
                  file=sys.stderr)
    else:
        chosen = sorted(available)
    if not chosen:
        raise XltError(f"no text for any language{f' of panel {the_panel.name!r}' if the_panel else ''} in "
                       f"{where} — pass --corpus with <code>.txt files (one sentence per line)")

    texts: dict[str, list[str]] = {}
    gold: dict[str, list[list[str]]] = {}
    sources: dict[str, str] = {}
    for code in chosen:
        if code in ud_files:
            gold[code] = _ud_sample(ud_files[code], sample_lines)
        if code in text_files:
            texts[code] = _read_sample(text_files[code], code, sample_lines)
            sources[code] = "text"
        elif code in text_languages:
            texts[code] = _dataset_sample(source, code, sample_lines, Path(cache_dir) / "hf")
            sources[code] = "text"
        else:
            texts[code] = _ud_texts(ud_files[code], sample_lines) or [" ".join(s) for s in gold[code]]
            sources[code] = "UD # text"
    rows = audit_tokenizers(tokenizers, texts, the_panel, gold)
    ud_only = [c for c, s in sources.items() if s != "text"]
    notes = ["tokenizers: " + ", ".join(f"`{n}` ({p}, vocabulary {tokenizers[n].vocab_size})"
                                         for n, p in zip(names, tokenizer, strict=True)),
             f"panel: {the_panel.name if the_panel else '(none)'}; text: {text_from}" + (f"; UD: {ud}" if ud else "")
             + (f" (UD `# text` lines for {', '.join(ud_only)})" if ud_only else ""),
             f"sample: first {sample_lines} distinct lines (and UD sentences) per language",
             "fertility = pieces per word; continued = share of words split into >= 2 pieces; rates are shares "
             "of ids; mean len = ids per line (no special tokens); vocab share = distinct ids / vocabulary; "
             "char coverage = share of characters not left to byte fallback or <unk>"]
    paths = write_audit(rows, out_dir, overwrite=overwrite, notes=notes, panel=the_panel)
    message = f"wrote {out_dir} ({', '.join(p.name for p in paths.values())})"
    if mlflow:
        params = {f"tokenizer.{n}": str(p) for n, p in zip(names, tokenizer, strict=True)}
        params.update({"panel": the_panel.name if the_panel else "", "corpus": str(text_from), "ud": str(ud or ""),
                       "sample_lines": sample_lines, "languages": ",".join(chosen)})
        run_id = log_audit_to_mlflow(rows, paths, experiment_name=experiment_name, tracking_uri=tracking_uri,
                                     run_name=run_name, params=params,
                                     manifests={n: getattr(t, "manifest", {}) for n, t in tokenizers.items()})
        message += f"; MLflow run {run_id} in experiment '{stage_run(experiment_name)[0]}'"  # an experiment's own
    table = (out_dir / MARKDOWN_FILE).read_text(encoding="utf-8").split("## ", 2)[1]
    print("## " + table.rstrip() + "\n\n" + message)
    return rows
