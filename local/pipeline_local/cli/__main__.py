"""``python -m pipeline_local.cli``: the ``pipeline`` command."""

import sys

from pipeline_local.cli import main

sys.exit(main())
