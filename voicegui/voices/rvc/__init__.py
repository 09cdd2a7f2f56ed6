"""RVC voice models (v1/v2 .pth and .onnx) and their shared front ends.

Heavy: imports torch. Only import this package when an RVC voice is selected.
"""
