"""Data modules: the MLM corpus (:mod:`~xlt.datamodules.corpus`) and one module per benchmark task.

Each task module (``xnli``, ``pawsx``, ``udpos``, ``ner``, ``qa``, ``retrieval``) holds its data module and the
:class:`~xlt.datamodules.task_spec.TaskSpec` it declares; :data:`xlt.datamodules.tasks.TASKS` lists them in
Table 2 order. Shared bases: :mod:`~xlt.datamodules.task_data` (languages, sources, few-shot, batching),
:mod:`~xlt.datamodules.classification` and :mod:`~xlt.datamodules.token_classification`, named like the heads
under :mod:`xlt.models` they pair with. Format parsers live in :mod:`xlt.formats`.
"""
