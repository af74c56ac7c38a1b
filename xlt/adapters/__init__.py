"""Language and task adapters (MAD-X) inserted into transformers 5 BERT/XLM-R-family encoders, routed per example."""
