"""Seed-VC (DiT + conditional flow matching) written from the published architecture.

Heavy: imports torch. Only import this package when the Seed-VC voice is selected.
"""
