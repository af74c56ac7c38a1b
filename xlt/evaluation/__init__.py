"""evaluation package of xlt."""
