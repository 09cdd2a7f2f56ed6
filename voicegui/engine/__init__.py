"""The real-time path: framing, resampling, gate, voice, SOLA, metrics. No Qt."""
