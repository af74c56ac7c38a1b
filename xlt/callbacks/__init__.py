"""callbacks package of xlt."""
