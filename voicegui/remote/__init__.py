"""Neural voices served from another machine: a Triton server (``voicegui serve``, PyTriton)
and the app's remote voice that streams one window per block to it over gRPC.

The server side (``server``, ``service``, ``batched``) runs in the server's own environment
(PyTriton pins numpy < 2); the client side (``client``, ``probe``) needs only
``tritonclient[grpc]``. ``protocol`` and ``auth`` are shared and import neither.
"""
