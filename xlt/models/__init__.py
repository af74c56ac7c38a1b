"""models package of xlt."""
