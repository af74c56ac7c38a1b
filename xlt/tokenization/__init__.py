"""tokenization package of xlt."""
