"""``xlt tokenizer fit``: resolve the corpus and panel named on the command line, then fit one configuration.

:func:`fit_command` is the typed function behind the command (its docstring is the ``--help``); the
configuration is one nested :class:`~xlt.tokenization.vocabulary.VocabularyConfig` (``vocabulary:`` in
``configs/tokenizer/*.yaml``, ``--vocabulary.<field>`` on the command line), the same shape as the corpus
DataModule's ``tokenizer_fit``. The corpus is a text source (:mod:`xlt.sources`), the same object as the corpus
DataModule's ``corpus``: :func:`corpus_files` gives a local source's ``<code>.txt`` files (fitted by
:func:`xlt.tokenization.fit.fit_configuration`); a hub dataset's rows are fitted by
:func:`xlt.tokenization.fit.fit_tokenizer_from_datasets`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from xlt.errors import XltError
from xlt.languages import Panel, load_panel
from xlt.sources import TextSource, as_text_source
from xlt.tokenization.fit import fit_configuration, fit_tokenizer_from_datasets
from xlt.tokenization.vocabulary import VocabularyConfig, resolve_designated

__all__ = ["corpus_files", "fit_command"]

_SHARED = VocabularyConfig()  # the default configuration (a); never modified


def corpus_files(source: TextSource, languages: Sequence[str] | None, panel: Panel | None) -> dict[str, Path]:
    """Language -> text file of a local text source (``<dir>/<code>.txt`` or ``<dir>/mlm/<code>.txt``).

    With ``languages`` every listed language must have a file; otherwise the panel's languages that have one
    (or, without a panel, every language the source has text for).
    """
    if languages is not None:
        if not languages:
            raise XltError("languages is empty — list at least one language code or leave it unset")
        missing = [code for code in languages if source.text_file(code) is None]
        if missing:
            base = source.local_dir() or Path(".")
            raise XltError(f"corpus file {base / (missing[0] + '.txt')} for language '{missing[0]}' not found — "
                           "add it (one sentence per line) or drop the language from languages")
        return {code: source.text_file(code) for code in languages}  # type: ignore[misc]
    if panel is not None:
        files = {code: path for code in panel.codes if (path := source.text_file(code)) is not None}
    else:
        files = {code: path for code in source.languages() if (path := source.text_file(code)) is not None}
    if not files:
        raise XltError(f"{source} has no <code>.txt file"
                       + (f" for any language of panel '{panel.name}'" if panel is not None else "")
                       + " — add text files (one sentence per line)")
    return files


def fit_command(
    output: str | None = None,
    corpus: TextSource | str = "synthetic",
    vocabulary: VocabularyConfig = _SHARED,
    vocab_size: int = 8000,
    panel: str | None = None,
    languages: list[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str = "runs/cache",
) -> None:
    """Fit a tokenizer in one of the paper's four vocabulary configurations and write its directory.

    (a) shared, (b) balanced, (c) proportional_2x, (d) lang_specific (§III.C); configs/tokenizer/*.yaml hold
    one recipe each. The directory (written atomically) holds the SentencePiece model(s), manifest.json and
    transformers tokenizer files; load it with xlt.tokenization.tokenizer.XltTokenizer.load.

    Args:
        output: Tokenizer directory to write (default: ``runs/tokenizers/<configuration>``).
        corpus: Where the text comes from, a text source (xlt.sources), as for the corpus DataModule:
            ``xlt.sources.SyntheticPanel`` (``seed``, ``scale``: the synthetic panel, generated into
            ``cache_dir`` once; ``--corpus SyntheticPanel --corpus.scale 0.5``, or ``--corpus.init_args.scale 0.5``
            over a config that gives the object), ``xlt.sources.TextDirectory`` (``path``: a
            directory of ``<code>.txt`` files, one sentence per line; ``<dir>/mlm/<code>.txt`` also works) or
            ``xlt.sources.HubText`` (``dataset``, ``config``, ``split``, ``column``: a hub dataset, one config per
            language; give ``languages`` or ``panel``). Short forms: ``synthetic``, a directory path,
            ``hf:<dataset_id>``.
        vocabulary: The vocabulary configuration and its settings (``--vocabulary.configuration
            lang_specific``, ``--vocabulary.language_pieces 500`` ...; the same shape as the corpus
            DataModule's ``tokenizer_fit``).
        vocab_size: Base SentencePiece pieces of the shared vocabulary (ids = pieces + 2); ``proportional_2x``
            fits twice this, ``lang_specific`` adds its blocks on top.
        panel: Language panel (name under configs/panels or a YAML path) for the language list and the
            designated languages; default: the synthetic panel's own for the synthetic corpus, else the corpus
            directory's ``panel.yaml`` if any.
        languages: Language codes to fit on (default: the panel's languages that have a text file).
        seed: Seed of the line samples.
        overwrite: Replace an existing output directory.
        cache_dir: Default cache of a corpus that names none: where the synthetic panel is generated (shared
            with the corpus DataModule); a hub dataset's download cache is ``<cache_dir>/hf``.
    """
    vocabulary.check("vocabulary.")
    output = output or f"runs/tokenizers/{vocabulary.configuration}"
    if Path(output).exists() and not overwrite:
        raise XltError(f"tokenizer directory {output} already exists — pass --overwrite true or choose another path")
    if languages is not None and not languages:
        raise XltError("languages is empty — list at least one language code or leave it unset")
    source = as_text_source(corpus, cache_dir)
    source.check()  # the source exists (a corpus directory is there); nothing is read
    source.prepare()  # the synthetic panel: generated once into its cache
    root = source.local_dir()
    default_panel = None if root is None else root / "panel.yaml"
    panel_obj = load_panel(panel) if panel else (load_panel(str(default_panel))
                                                 if default_panel is not None and default_panel.is_file() else None)
    if languages is not None and panel_obj is not None:
        for code in languages:
            panel_obj.get(code)  # XltError naming the panel for unknown codes
    if root is not None:  # local text files
        files = corpus_files(source, languages, panel_obj)
        resolve_designated(vocabulary, list(files), panel_obj, "vocabulary.")  # before reading any corpus file
        start = time.perf_counter()
        tokenizer = fit_configuration(files, output, vocab_size, vocabulary, seed=seed, overwrite=overwrite,
                                      panel=panel_obj)
        count = len(files)
    else:  # rows of datasets (a hub dataset)
        codes = list(languages) if languages is not None else source.languages(
            panel_obj.codes if panel_obj is not None else None)
        resolve_designated(vocabulary, codes, panel_obj, "vocabulary.")  # before loading any dataset
        start = time.perf_counter()
        datasets = {code: source.dataset(code, Path(cache_dir) / "hf") for code in codes}
        tokenizer = fit_tokenizer_from_datasets(
            datasets, output, vocab_size, seed=seed, overwrite=overwrite, text_column=source.column,
            describe={code: json.dumps(source.language_identity(code)) for code in codes},
            vocabulary=vocabulary, panel=panel_obj)
        count = len(codes)
    seconds = time.perf_counter() - start
    blocks = ", ".join(f"{code} [{a}, {b})" for code, (a, b) in tokenizer.blocks.items())
    print(f"wrote {output}: configuration {vocabulary.configuration}, {tokenizer.shared_vocab_size} shared ids"
          + (f" + blocks {blocks}" if blocks else "") + f" = {tokenizer.vocab_size} ids, "
          f"{count} languages, {seconds:.1f} s")
