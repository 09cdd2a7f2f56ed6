"""RVC voice models (VITS-style synthesizer with an NSF HiFi-GAN decoder), written from the
published architecture; the files users already have load as they are.

Heavy: the modules import torch. Only import them when an RVC voice is selected.
"""
