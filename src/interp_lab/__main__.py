import sys

from interp_lab.cli.main import main

sys.exit(main())
