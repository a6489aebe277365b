"""python -m index: the article library's command line."""

import sys

from index.cli import main

sys.exit(main())
