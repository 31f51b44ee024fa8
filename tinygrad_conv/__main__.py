import sys

from tinygrad_conv.cli import main

sys.exit(main())
