"""python -m voicegui"""

import sys

from voicegui.cli import main

if __name__ == "__main__":  # the audio host process imports this module again: do nothing then
    sys.exit(main())
