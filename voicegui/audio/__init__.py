"""PortAudio through sounddevice. No Qt, no torch."""
