"""``python -m hf_avemotion ...``: the same command line as ``avemotion ...`` (see `hf_avemotion.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
