"""The kit's geometry: what the tests derive from its README settings agrees with its arrays.

Every length the parity tests use comes from here (or from an array's shape), so a kit made the
same way with other settings, signals, lengths or seed runs the same tests unchanged.
"""

from __future__ import annotations

import math
import re

from tests.seedvc.conftest import standalone_prompt_frames
from voicegui.voices.seedvc.features import HOP


def _content_frames(n16: int) -> int:
    # the wav2vec2 conv stack, as the kit's README states it
    n = (n16 - 10) // 5 + 1
    for _ in range(4):
        n = (n - 3) // 2 + 1
    for _ in range(2):
        n = (n - 2) // 2 + 1
    return n


def _mel_frames(n: int) -> int:
    return (n + 768 - 1024) // HOP + 1


def test_derived_lengths_match_the_readme(seedvc_kit, kit_geometry):
    """The README lists the values upstream's GUI derived ("zc = 441", ...): same arithmetic."""
    g = kit_geometry
    text = (seedvc_kit / "README.md").read_text(encoding="utf-8")
    section = text.split("**Derived values.**", 1)[1].split("**Prompt**", 1)[0]
    stated = {}
    for clause in re.split(r",|\n", section):
        # "crossfade = sola_buffer = 882", "window = 60858 samples at 22.05 kHz = ..."
        m = re.match(r"[\s*]*((?:[a-z_]+ = )+)([0-9.]+)", clause)
        if m:
            for name in re.findall(r"[a-z_]+", m.group(1)):
                stated[name] = float(m.group(2))
    ours = {
        "zc": g.zc,
        "block_frame": g.block_frame,
        "crossfade": g.sola_buffer,
        "sola_buffer": g.sola_buffer,
        "sola_search": g.sola_search,
        "extra": g.extra,
        "right": g.right,
        "window": g.window,
        "skip_head": g.extra // g.zc,
        "skip_tail": g.right // g.zc,
        "return_length": g.return_length,
        "cd_difference": g.extra_ce - g.extra_dit,
    }
    assert {"zc", "block_frame", "window", "return_length"} <= set(stated), stated
    for name, value in stated.items():
        if name in ours:
            assert math.isclose(ours[name], value), f"{name}: README {value}, derived {ours[name]}"


def test_arrays_have_the_derived_lengths(kit_geometry, kit_inputs, kit_expected):
    g, I, E = kit_geometry, kit_inputs, kit_expected
    plan = g.plan()
    crop = min(len(I["ref_wav_22k"]), g.prompt_samples)
    prompt_frames = E["e2e_prompt_mel"].shape[-1]
    assert prompt_frames == _mel_frames(crop)
    assert E["ref_mel"].shape[-1] == _mel_frames(len(I["ref_wav_22k"]))
    assert I["e2e_cfm_noise"].shape[-1] == prompt_frames + plan.mel_frames
    assert I["e2e_hift_noise"].shape[-1] == plan.mel_frames * HOP
    assert E["e2e_output"].shape[-1] == g.out_samples == plan.out_samples
    assert len(I["stream_in_22k"]) % g.block_frame == 0
    n16 = math.ceil(g.window * 320 / 441)
    assert I["e2e_window_content"].shape[1] == _content_frames(n16)
    assert plan.drop_frames == int(round((g.extra_ce - g.extra_dit) * 50))
    assert E["cfm_out_s10_cfg07"].shape[-1] == standalone_prompt_frames(E) + int(I["src_ylens"][0])
    assert I["hift_f0x_noise"].shape[-1] == I["hift_f0x_f0"].shape[-1] * HOP
