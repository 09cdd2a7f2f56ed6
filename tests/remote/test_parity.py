"""The remote voice gives what the local voice gives, alone and batched with another stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.remote.streaming import RATE, info, local_blocks, remote_voice, windows
from tests.seedvc.conftest import RTOL_BLOCK, assert_rel, rounding_rtol

pytestmark = pytest.mark.slow
N = 5

# A batched row differs from the same block alone only by the rounding of batched products:
# the block's own (length regulator + DiT + HiFT, RTOL_BLOCK) and the tiny XLS-R content
# encoder's, run over both windows at once: 7 feature convolutions (fan-ins 10, 5 x 192, 128:
# sqrt sum 84), the projection (8), the positional convolution (1024: 32) and 2 layers of
# q/k/v/o (4 x 32), attention (8 + 7) and feed-forward (32 + 16): 2 x 191. Sum ~506.
RTOL_BATCHED = RTOL_BLOCK + rounding_rtol(506)


@pytest.fixture(scope="module")
def references(kit_inputs):
    """Two target voices whose prompts differ in content and in length (frames)."""
    ref = kit_inputs["ref_wav_22k"]
    return ref[:RATE], np.ascontiguousarray(ref[::-1][: int(0.8 * RATE)])


@pytest.fixture(scope="module")
def wins(kit_inputs):
    return windows(kit_inputs["stream_in_22k"], N)


def test_remote_equals_local_voice(server, local_model, references, wins):
    """Same checkpoints, same torch build, one thread each side, the same seeded draws: the
    server's block is the local block's float32 computation. The two processes still differ in
    what sets summation orders (the numpy build that makes the mel and fbank tables, the
    kernels each process picks), so the tolerance is the block's rounding (RTOL_BATCHED,
    below). The reply to block k arrives with block k+1 (one block of pipeline)."""
    local = local_blocks(local_model, references[0], wins)
    voice = remote_voice(server)
    try:
        voice.prepare(references[0], RATE)
        remote = [voice.convert(w, info(k)) for k, w in enumerate(wins)]
    finally:
        voice.close()
    np.testing.assert_array_equal(remote[0], 0.0)  # before the first reply: silence
    for k in range(1, N):
        assert_rel(remote[k], local[k - 1], RTOL_BATCHED, f"block {k - 1}")
    # negative control: another stream seed draws other noise, and equality fails
    other = remote_voice(server, seed=99)
    try:
        other.prepare(references[0], RATE)
        first = [other.convert(w, info(k)) for k, w in enumerate(wins[:2])][1]
    finally:
        other.close()
    with pytest.raises(AssertionError):
        assert_rel(first, local[0], RTOL_BATCHED, "another seed")


def test_two_streams_keep_their_state_and_batch(server, local_model, references, wins):
    alone = [local_blocks(local_model, ref, wins) for ref in references]
    voices = [remote_voice(server) for _ in references]
    outs: list[list[np.ndarray]] = [[], []]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        for k, w in enumerate(wins):
            barrier.wait()  # both streams' blocks go out together, as on a shared clock
            outs[i].append(voices[i].convert(w, info(k)))

    try:
        for v, ref in zip(voices, references, strict=True):
            v.prepare(ref, RATE)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        # the passes each stream's blocks went through (2: the two streams' blocks; more when
        # the next blocks queued while the server computed)
        batched = [max(v.batch_sizes, default=1) >= 2 for v in voices]
    finally:
        for v in voices:
            v.close()
    assert all(len(o) == N for o in outs)
    sizes = [sorted(set(v.batch_sizes)) for v in voices]
    assert all(batched), f"the server never put the two streams' blocks in one pass: {sizes}"
    for i in range(2):
        for k in range(1, N):
            assert_rel(outs[i][k], alone[i][k - 1], RTOL_BATCHED, f"stream {i} block {k - 1}")
    # negative control: each stream's output is its own reference's, not the other's
    with pytest.raises(AssertionError):
        assert_rel(outs[0][2], alone[1][1], RTOL_BATCHED, "stream 0 against stream 1")
