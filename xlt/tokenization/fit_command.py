"""``xlt tokenizer fit``: resolve the corpus and panel named on the command line, then fit one configuration.

:func:`fit_command` is the typed function behind the command (its docstring is the ``--help``); the
configuration is one nested :class:`~xlt.tokenization.vocabulary.VocabularyConfig` (``vocabulary:`` in
``configs/tokenizer/*.yaml``, ``--vocabulary.<field>`` on the command line), the same shape as the corpus
DataModule's ``tokenizer_fit``. :func:`corpus_files` finds a corpus directory's ``<code>.txt`` files (the
synthetic panel is :func:`xlt.synthetic.cached_panel`); the fitting itself is
:func:`xlt.tokenization.fit.fit_configuration`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from xlt.errors import XltError
from xlt.languages import Panel, load_panel
from xlt.tokenization.fit import fit_configuration
from xlt.tokenization.vocabulary import VocabularyConfig, resolve_designated

__all__ = ["corpus_files", "fit_command"]

_SHARED = VocabularyConfig()  # the default configuration (a); never modified


def corpus_files(corpus: str, languages: Sequence[str] | None, panel: Panel | None) -> dict[str, Path]:
    """Language -> text file of a corpus directory (``<dir>/<code>.txt`` or ``<dir>/mlm/<code>.txt``).

    With ``languages`` every listed language must have a file; otherwise the panel's languages that have one
    (or, without a panel, every ``<code>.txt``).
    """
    root = Path(corpus)
    if not root.is_dir():
        raise XltError(f"corpus directory {corpus} not found — give a directory of <code>.txt files or "
                       "'synthetic'")

    def find(code: str) -> Path | None:
        return next((p for p in (root / f"{code}.txt", root / "mlm" / f"{code}.txt") if p.is_file()), None)

    if languages is not None:
        if not languages:
            raise XltError("languages is empty — list at least one language code or leave it unset")
        missing = [code for code in languages if find(code) is None]
        if missing:
            raise XltError(f"corpus file {root / (missing[0] + '.txt')} for language '{missing[0]}' not found — "
                           "add it (one sentence per line) or drop the language from languages")
        return {code: find(code) for code in languages}  # type: ignore[misc]
    if panel is not None:
        files = {code: path for code in panel.codes if (path := find(code)) is not None}
    else:
        base = root / "mlm" if (root / "mlm").is_dir() else root
        files = {p.stem: p for p in sorted(base.glob("*.txt"))}
    if not files:
        raise XltError(f"corpus directory {corpus} has no <code>.txt file"
                       + (f" for any language of panel '{panel.name}'" if panel is not None else "")
                       + " — add text files (one sentence per line)")
    return files


def fit_command(
    output: str | None = None,
    corpus: str = "synthetic",
    vocabulary: VocabularyConfig = _SHARED,
    vocab_size: int = 8000,
    panel: str | None = None,
    languages: list[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str = "runs/cache",
    synthetic_seed: int = 0,
    synthetic_scale: float = 1.0,
) -> None:
    """Fit a tokenizer in one of the paper's four vocabulary configurations and write its directory.

    (a) shared, (b) balanced, (c) proportional_2x, (d) lang_specific (§III.C); configs/tokenizer/*.yaml hold
    one recipe each. The directory (written atomically) holds the SentencePiece model(s), manifest.json and
    transformers tokenizer files; load it with xlt.tokenization.tokenizer.XltTokenizer.load.

    Args:
        output: Tokenizer directory to write (default: ``runs/tokenizers/<configuration>``).
        corpus: ``synthetic`` (the synthetic panel, generated into ``cache_dir``) or a directory of
            ``<code>.txt`` files (one sentence per line; ``<dir>/mlm/<code>.txt`` also works).
        vocabulary: The vocabulary configuration and its settings (``--vocabulary.configuration
            lang_specific``, ``--vocabulary.language_pieces 500`` ...; the same shape as the corpus
            DataModule's ``tokenizer_fit``).
        vocab_size: Base SentencePiece pieces of the shared vocabulary (ids = pieces + 2); ``proportional_2x``
            fits twice this, ``lang_specific`` adds its blocks on top.
        panel: Language panel (name under configs/panels or a YAML path) for the language list and the
            designated languages; default: ``synthetic`` for the synthetic corpus, else the corpus
            directory's ``panel.yaml`` if any.
        languages: Language codes to fit on (default: the panel's languages that have a text file).
        seed: Seed of the line samples.
        overwrite: Replace an existing output directory.
        cache_dir: Where the synthetic panel is generated (shared with the corpus DataModule).
        synthetic_seed: Seed of the synthetic panel.
        synthetic_scale: Corpus size multiplier of the synthetic panel.
    """
    vocabulary.check("vocabulary.")
    output = output or f"runs/tokenizers/{vocabulary.configuration}"
    if Path(output).exists() and not overwrite:
        raise XltError(f"tokenizer directory {output} already exists — pass --overwrite true or choose another path")
    if corpus == "synthetic":
        from xlt.synthetic import cached_panel

        root = cached_panel(cache_dir, synthetic_seed, synthetic_scale)
        corpus_dir, panel_obj = str(root / "mlm"), load_panel(panel or str(root / "panel.yaml"))
    else:
        corpus_dir = corpus
        default_panel = Path(corpus) / "panel.yaml"
        panel_obj = load_panel(panel) if panel else (load_panel(str(default_panel)) if default_panel.is_file()
                                                     else None)
    if languages is not None and panel_obj is not None:
        for code in languages:
            panel_obj.get(code)  # XltError naming the panel for unknown codes
    files = corpus_files(corpus_dir, languages, panel_obj)
    resolve_designated(vocabulary, list(files), panel_obj, "vocabulary.")  # before reading any corpus file
    start = time.perf_counter()
    tokenizer = fit_configuration(files, output, vocab_size, vocabulary, seed=seed, overwrite=overwrite,
                                  panel=panel_obj)
    seconds = time.perf_counter() - start
    blocks = ", ".join(f"{code} [{a}, {b})" for code, (a, b) in tokenizer.blocks.items())
    print(f"wrote {output}: configuration {vocabulary.configuration}, {tokenizer.shared_vocab_size} shared ids"
          + (f" + blocks {blocks}" if blocks else "") + f" = {tokenizer.vocab_size} ids, "
          f"{len(files)} languages, {seconds:.1f} s")
