"""RVC voice models (retrieval-based voice conversion): the user's voice library, the shared
content-encoder and pitch weights, and the voice itself.

This package's own import must stay light (no torch): the window lists the library through it.
"""
