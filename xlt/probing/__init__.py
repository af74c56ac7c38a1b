"""Layer-wise probing and representation analysis (``xlt probe`` and :mod:`xlt.callbacks.probing`).

One no-grad pass over the probing data gives every layer's word and sentence vectors (:mod:`.features`); linear /
MLP probes with control tasks (:mod:`.linear`), structural probes (:mod:`.structural`), retrieval
(:mod:`.retrieval`), CKA / SVCCA (:mod:`.similarity`) and attention entropy (:mod:`.attention`) then run on all
layers at once; :mod:`.analysis` ties them into one round, :mod:`.summary` finds where each property peaks.
"""
