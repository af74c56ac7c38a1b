"""Tokenizers: fitting the paper's vocabulary configurations (a–d), the language-aware tokenizer, the audit.

Modules, one job each:

    vocabulary      VocabularyConfig (which of a–d, its settings) and the designated languages of (d)
    sampling        per-language text: line counting, sample quotas, the seeded stream of sampled lines
    fit             SentencePiece fitting of a configuration -> a tokenizer directory (fit_configuration)
    blocks          the language-specific blocks of configuration (d)
    tokenizer       XltTokenizer: load, encode with per-language routing, transformers exports
    fit_command     ``xlt tokenizer fit`` (fit_command)
    audit           the audit numbers per tokenizer x language (audit_tokenizers; writes nothing)
    audit_report    the audit's CSV, Markdown, plots and MLflow run
    audit_command   ``xlt tokenizer audit`` (audit_command): the fixed text sample, then audit and report
"""
