"""``python -m graphnet``: the command line (:mod:`graphnet.cli`), for where
the ``graphnet`` script is not on the ``PATH``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
