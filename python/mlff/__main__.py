"""``python -m mlff ...`` is the ``mlff`` command (so ``torchrun -m mlff train ...`` works)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
