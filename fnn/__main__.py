"""``python -m fnn``: the command line (:func:`fnn.cli.main`)."""
from fnn.cli import main
import sys

sys.exit(main())
