"""``python -m tritond``: the same command as ``tritond``."""
import sys

from tritond.cli import main

# Guarded: spawned children import this module again as ``__mp_main__``.
if __name__ == "__main__":
    sys.exit(main())
