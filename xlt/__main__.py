"""``python -m xlt`` (used by ``torchrun -m xlt``)."""

from xlt.cli import main

main()
