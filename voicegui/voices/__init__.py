"""Conversion engines behind one protocol (see base.py). Heavy imports stay lazy."""
