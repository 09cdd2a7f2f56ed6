"""RVC voice models (retrieval-based voice conversion): the user's voice library, the shared
content-encoder and pitch weights, and the voice itself.

This package's own import must stay light (no torch): the window lists the library through it.
"""


def live_values(settings) -> dict:
    """What an RVC voice takes from its VoiceSettings between blocks (``update``): pitch,
    formant, index rate and protect."""
    return {
        "pitch": settings.pitch,
        "formant": settings.formant,
        "index_rate": settings.index_rate,
        "protect": settings.protect,
    }
