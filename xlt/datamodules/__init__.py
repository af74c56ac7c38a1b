"""datamodules package of xlt."""
