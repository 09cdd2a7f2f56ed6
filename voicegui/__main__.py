"""python -m voicegui"""

import sys

from voicegui.cli import main

sys.exit(main())
