"""``python -m rewards_sandbox``: same as the ``rewards-sandbox`` command."""

import sys

from rewards_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
