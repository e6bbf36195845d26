"""`python -m resnet_lab ...`: the command line (see resnet_lab.cli)."""

import sys

from resnet_lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
