"""Experiments: the paper's claims as recipes of ordinary xlt commands (``xlt experiment run|plan|report``)."""
