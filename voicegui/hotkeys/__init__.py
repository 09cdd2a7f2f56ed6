"""Global hotkeys: push-to-talk, mute, bypass, presets and recording from any program.

``bindings`` is the pure model (actions, key combinations, rules, the saved form); ``matcher``
turns raw keys into actions; ``backend`` picks the listener for this desktop (``pynput_backend``
for X11, Windows and macOS, ``portal`` for Wayland); ``service`` runs it and sends the commands
to the audio host. No Qt here: the window wires it up (voicegui/ui/hotkeys.py).
"""
