"""Seed-VC on onnxruntime: exported graphs, provider choice, fp16 for GPUs, int8 for CPUs.

Modules (nothing heavy is imported here):
  graphs     export-friendly torch wrappers of the Seed-VC stages (fp32 or fp16 inside)
  export     torch -> ONNX export, int8 quantisation, the cache keyed by checkpoint sha256
  providers  TensorRT > CUDA > DirectML > CoreML > CPU, the user's choice, what really runs
  runtime    OrtSeedVCModel: the SeedVCModel interface SeedVCVoice uses, with IO binding
  bench      torch / ORT fp32 / ORT int8 per-block compute side by side

Use: ``OrtSeedVCModel.load(dit, hift, campplus, content_dir, device=..., precision=...)`` and
wrap it in ``SeedVCVoice`` like the torch model.
"""
