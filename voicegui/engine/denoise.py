"""Input noise suppression with RNNoise, streaming, at any block size and device rate.

RNNoise (Xiph's recurrent suppressor, its trained weights built into the shared library that the
``pyrnnoise`` package ships) works on 480-sample frames at 48 kHz and expects samples on the
16-bit scale (+-32768) as floats. This stage:

- resamples to 48 kHz and back with the engine's fixed-delay streaming resamplers when the device
  runs at another rate, one *super-frame* at a time: the shortest stretch that is a whole number of
  samples at the device rate and a whole number of 10 ms frames at 48 kHz (10 ms at every rate
  that is a multiple of 100 Hz; 40 ms at 11025 Hz, for example);
- buffers device samples so any block size works: the output FIFO is primed with
  ``frame_dev - gcd(block, frame_dev)`` zeros, the least that keeps it from running empty, so the
  delay is fixed (zero extra when the block is a whole number of super-frames);
- mixes dry and wet at 48 kHz, the dry taken through the same resamplers and delayed by exactly the
  model's own delay, so any mix is phase-aligned (no comb filter);
- ramps the mix over one super-frame when it changes, so toggling is click-free. The model keeps
  running while the mix is 0: the delay never changes while the stage exists and turning it back on
  is instant (its recurrent state is current).

The library is loaded with ctypes straight from the installed package's folder, without importing
the package (its Python side pulls in file and plotting libraries the engine does not need).
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import sys
import time
from pathlib import Path

import numpy as np

from voicegui.audio.ringbuffer import RingBuffer
from voicegui.engine.resample import StreamResampler

RATE = 48000  # RNNoise's only rate
FRAME = 480  # samples per RNNoise frame (10 ms); checked against the library
# Samples from a frame going in to the same audio coming out: RNNoise 0.2 analyses a 20 ms window
# and emits the frame before the one just given (measured: cross-correlation peak at 960, residual
# -18 dB at that lag against -1.4 dB one sample off; tests/core/test_denoise.py asserts it).
MODEL_DELAY = 960
SCALE = 32768.0  # RNNoise's sample scale (16-bit integers held as floats)

_LIB: ctypes.CDLL | None = None


def _library_names() -> tuple[str, ...]:
    if sys.platform == "win32":
        return ("rnnoise.dll", "librnnoise.dll")
    if sys.platform == "darwin":
        return ("librnnoise.dylib",)
    return ("librnnoise.so",)


def library_path() -> Path:
    """Where the installed pyrnnoise package keeps its RNNoise shared library.

    In a frozen app the library is looked for in a ``pyrnnoise`` folder of the bundle.
    """
    folders = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        folders.append(str(Path(bundle) / "pyrnnoise"))
    spec = importlib.util.find_spec("pyrnnoise")  # finds the package without running it
    if spec is not None and spec.submodule_search_locations:
        folders += list(spec.submodule_search_locations)
    if not folders:
        raise ImportError("noise suppression needs the pyrnnoise package (pip install pyrnnoise)")
    for folder in folders:
        for name in _library_names():
            path = Path(folder) / name
            if path.is_file():
                return path
    raise ImportError(f"pyrnnoise is installed but holds no RNNoise library ({_library_names()})")


def load_library() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(str(library_path()))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.argtypes = []
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        f32p = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, f32p, f32p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        size = lib.rnnoise_get_frame_size()
        if size != FRAME:
            raise ImportError(f"RNNoise frame size is {size}, this engine expects {FRAME}")
        _LIB = lib
    return _LIB


def available() -> bool:
    try:
        load_library()
    except (ImportError, OSError):
        return False
    return True


class RNNoiseState:
    """One RNNoise stream: 480 samples in, 480 out (delayed by MODEL_DELAY), float32, +-1 scale."""

    def __init__(self) -> None:
        self._lib = load_library()
        self._state = self._lib.rnnoise_create(None)
        if not self._state:
            raise MemoryError("rnnoise_create failed")
        self._in = np.zeros(FRAME, dtype=np.float32)
        self._out = np.zeros(FRAME, dtype=np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        self._pin = self._in.ctypes.data_as(f32p)
        self._pout = self._out.ctypes.data_as(f32p)
        self.speech_probability = 0.0  # RNNoise's voice activity estimate for the last frame

    def process(self, frame: np.ndarray, out: np.ndarray) -> None:
        np.multiply(frame, SCALE, out=self._in)
        self.speech_probability = float(
            self._lib.rnnoise_process_frame(self._state, self._pout, self._pin)
        )
        np.multiply(self._out, 1.0 / SCALE, out=out)

    def close(self) -> None:
        if self._state:
            self._lib.rnnoise_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


def superframe(device_rate: int) -> tuple[int, int]:
    """(device samples, 48 kHz samples): the shortest stretch whole at both, in 10 ms steps."""
    frames = 100 // math.gcd(device_rate, 100)
    return frames * device_rate // 100, frames * FRAME


class Denoiser:
    """Noise suppression for ``block`` device samples per call at ``device_rate``.

    Not thread-safe: owned by the block thread. ``set_mix`` may be called between blocks.
    """

    def __init__(self, device_rate: int, block: int, mix: float = 1.0) -> None:
        self.device_rate, self.block = device_rate, block
        self.frame_dev, self.frame_48 = superframe(device_rate)
        self.model: RNNoiseState | None = None  # made by reset()
        if device_rate == RATE:
            self.to_48 = self.from_48 = None
        else:
            self.to_48 = StreamResampler(device_rate, RATE, self.frame_dev)
            self.from_48 = StreamResampler(RATE, device_rate, self.frame_48)
        self.prime = self.frame_dev - math.gcd(block, self.frame_dev)
        self._in = RingBuffer(self.frame_dev + block + 16)
        self._out = RingBuffer(self.prime + block + self.frame_dev + 16)
        self._frame = np.zeros(self.frame_dev, dtype=np.float32)
        self._block_out = np.zeros(block, dtype=np.float32)
        self._hist = np.zeros(MODEL_DELAY + self.frame_48, dtype=np.float32)  # dry delay at 48k
        self._wet = np.zeros(self.frame_48, dtype=np.float32)
        self._ramp = (np.arange(1, self.frame_48 + 1, dtype=np.float32)) / self.frame_48
        self._mix = self._target = float(mix)
        self.seconds = 0.0  # compute spent in ``process`` (for the bench)
        self.calls = 0
        self.frames = 0  # 10 ms RNNoise frames run
        self.reset()

    # ---- configuration --------------------------------------------------------------------
    def set_mix(self, mix: float, ramp: bool = True) -> None:
        """Wet share 0..1 from the next super-frame on (ramped over it unless ``ramp`` is off)."""
        self._target = min(1.0, max(0.0, float(mix)))
        if not ramp:
            self._mix = self._target

    @property
    def mix(self) -> float:
        return self._target

    @property
    def delay_seconds(self) -> float:
        """Fixed delay from a sample going in to the same sample coming out."""
        d = self.prime / self.device_rate + MODEL_DELAY / RATE
        if self.to_48 is not None:
            d += self.to_48.delay_seconds + self.from_48.delay_seconds
        return d

    @property
    def speech_probability(self) -> float:
        return self.model.speech_probability

    def reset(self) -> None:
        """Forget the stream (RNNoise state too); the delay stays the same."""
        if self.model is not None:
            self.model.close()
        self.model = RNNoiseState()
        for rs in (self.to_48, self.from_48):
            if rs is not None:
                rs.reset()
        self._in.skip(self._in.available())
        self._out.skip(self._out.available())
        if self.prime:
            self._out.write(np.zeros(self.prime, dtype=np.float32))
        self._hist[:] = 0.0
        self._mix = self._target

    def close(self) -> None:
        if self.model is not None:
            self.model.close()

    # ---- the stream -----------------------------------------------------------------------
    def process(self, x: np.ndarray) -> np.ndarray:
        """``block`` device samples in -> ``block`` out (a view into an internal buffer)."""
        t0 = time.perf_counter()
        self._in.write(x)
        while self._in.available() >= self.frame_dev:
            self._in.read_into(self._frame)
            self._out.write(self._superframe(self._frame))
        got = self._out.read_into(self._block_out)
        if got < self.block:  # cannot happen with the priming; stay safe anyway
            self._block_out[got:] = 0.0
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return self._block_out

    def _superframe(self, frame_dev: np.ndarray) -> np.ndarray:
        x48 = frame_dev if self.to_48 is None else self.to_48.process(frame_dev)
        n = self.frame_48
        hist, wet = self._hist, self._wet
        hist[MODEL_DELAY:] = x48
        for i in range(0, n, FRAME):
            self.model.process(x48[i : i + FRAME], wet[i : i + FRAME])
        self.frames += n // FRAME
        dry = hist[:n]  # the input MODEL_DELAY samples ago: aligned with wet
        start, end = self._mix, self._target
        if start == end == 1.0:
            out = wet.copy()
        elif start == end == 0.0:
            out = dry.copy()
        else:
            g = start + (end - start) * self._ramp if start != end else np.float32(end)
            out = dry + (wet - dry) * g
            out = out.astype(np.float32, copy=False)
        self._mix = end
        hist[:MODEL_DELAY] = hist[n : n + MODEL_DELAY]
        return out if self.from_48 is None else self.from_48.process(out)

    def cost(self) -> dict[str, float]:
        """Mean compute per call and per 10 ms of audio, in milliseconds."""
        if not self.calls:
            return {"per_block_ms": 0.0, "per_10ms_ms": 0.0}
        audio_10ms = self.calls * self.block / self.device_rate / 0.01
        return {
            "per_block_ms": self.seconds / self.calls * 1e3,
            "per_10ms_ms": self.seconds / audio_10ms * 1e3,
        }
