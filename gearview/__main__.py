"""`python -m gearview` behaves like the `gearview` command."""

import sys

from gearview.launcher import main

sys.exit(main())
