import sys

from tfao.cli.main import main

sys.exit(main())
