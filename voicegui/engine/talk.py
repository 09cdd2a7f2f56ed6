"""Push-to-talk and mute: an output gain that opens and closes with a short raised-cosine ramp.

``TalkControl`` holds what the user asks for (push-to-talk on, its key held, muted); any thread
sets it (one reference swap). ``OutputGate`` runs on the block thread: once per block it
reads whether the output should be open and moves the gain toward it by one ramp step per sample,
multiplying the output block in place. The ramp table is built once; an open gate at rest costs
one comparison and touches no sample, a closed one zero-fills the block.
"""

from __future__ import annotations

import math

import numpy as np

RAMP_TIME = 0.015  # s from silent to full (and back): short enough to catch the first syllable


class TalkControl:
    """What the output gate should do; written by the command thread, read by the block thread.

    The three switches live in one tuple swapped as a whole, so the block thread never sees a
    mix of an old and a new request."""

    def __init__(self) -> None:
        self._state = (False, False, False)  # push-to-talk on, its key held, muted

    @property
    def push_to_talk(self) -> bool:
        return self._state[0]

    @property
    def held(self) -> bool:
        return self._state[1]

    @property
    def muted(self) -> bool:
        return self._state[2]

    @property
    def open(self) -> bool:
        push_to_talk, held, muted = self._state
        return not muted and (held or not push_to_talk)

    def set(self, push_to_talk: bool, held: bool, muted: bool) -> None:
        self._state = (bool(push_to_talk), bool(held), bool(muted))

    def state(self) -> dict:
        return {"push_to_talk": self.push_to_talk, "held": self.held, "muted": self.muted}


def ramp_steps(rate: int, ramp_time: float = RAMP_TIME) -> int:
    """Samples the gain takes to go from 0 to 1 at ``rate``."""
    return max(1, round(ramp_time * rate))


def raised_cosine(steps: int) -> np.ndarray:
    """Gain levels 0..1 (``steps + 1`` values): g[k] = (1 - cos(pi k / steps)) / 2."""
    k = np.arange(steps + 1, dtype=np.float64)
    g = 0.5 - 0.5 * np.cos(np.pi * k / steps)
    g[0], g[-1] = 0.0, 1.0  # exactly silent and exactly unity at the ends
    return g.astype(np.float32)


def max_gain_step(steps: int) -> float:
    """Bound on the change of the gain between two samples:
    g[k] - g[k-1] = sin(pi (2k - 1) / (2 steps)) * sin(pi / (2 steps)) <= sin(pi / (2 steps))."""
    return math.sin(math.pi / (2 * steps))


class OutputGate:
    """Not thread-safe: owned by the block thread; ``control`` is the shared request."""

    def __init__(self, control: TalkControl, rate: int, ramp_time: float = RAMP_TIME) -> None:
        self.control = control
        self.steps = ramp_steps(rate, ramp_time)
        self._up = raised_cosine(self.steps)  # level k at index k
        self._down = self._up[::-1].copy()  # level k at index steps - k (contiguous when falling)
        # start where the request is: a stream that starts closed starts silent, without a ramp
        self.level = self.steps if control.open else 0

    @property
    def gain(self) -> float:
        return float(self._up[self.level])

    def apply(self, out: np.ndarray) -> None:
        """Multiply ``out`` in place by the gain, one ramp step per sample toward the target."""
        n, top, level = len(out), self.steps, self.level
        if self.control.open:
            if level == top:
                return
            m = min(n, top - level)
            np.multiply(out[:m], self._up[level + 1 : level + 1 + m], out=out[:m])
            self.level = level + m
        else:
            if level == 0:
                out.fill(0.0)
                return
            m = min(n, level)
            start = top - level + 1
            np.multiply(out[:m], self._down[start : start + m], out=out[:m])
            out[m:] = 0.0
            self.level = level - m
