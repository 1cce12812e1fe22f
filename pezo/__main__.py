import sys

from pezo.cli import main

sys.exit(main())
