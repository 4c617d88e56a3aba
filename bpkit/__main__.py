import sys

from bpkit.cli import main

sys.exit(main())
