"""tuning package of xlt."""
