"""Immutable, validated settings with a versioned JSON round trip.

The GUI builds a new ``Settings`` object for every change; the engine swaps it in between blocks.
Each field knows its range, unit and whether changing it needs a stream restart, so the GUI can
build its sliders from this table instead of repeating the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SCHEMA_VERSION = 1


class SettingsError(ValueError):
    """A settings value is out of range or of the wrong type."""


@dataclass(frozen=True)
class Spec:
    """How a numeric setting is shown and validated."""

    lo: float
    hi: float
    unit: str
    label: str
    help: str
    step: float
    restart: bool = False  # changing it restarts the audio streams
    voices: tuple[str, ...] = ()  # voices that use it; empty means every voice


def _num(lo, hi, unit, label, help, step, **kw) -> dict:
    return {"spec": Spec(lo, hi, unit, label, help, step, **kw)}


@dataclass(frozen=True)
class Flag:
    """How an on/off setting is shown (a check box) and which voices use it."""

    label: str
    help: str
    voices: tuple[str, ...] = ()


def _flag(label, help, **kw) -> dict:
    return {"flag": Flag(label, help, **kw)}


SEEDVC = ("seedvc",)
RVC = ("rvc",)
NEURAL = SEEDVC + RVC
DSP = ("dsp",)
F0_METHODS = ("rmvpe", "fcpe", "yin")  # RVC pitch estimators (yin: no weights, cheapest)


@dataclass(frozen=True)
class DeviceRef:
    """A device named by host API and device name, never by index (indices change)."""

    hostapi: str = ""
    name: str = ""

    def __bool__(self) -> bool:
        return bool(self.name)

    def __str__(self) -> str:
        return f"{self.name} ({self.hostapi})" if self.name else "(default)"


@dataclass(frozen=True)
class AudioSettings:
    input: DeviceRef = DeviceRef()
    output: DeviceRef = DeviceRef()
    monitor: DeviceRef = DeviceRef()  # optional second output hearing the same converted voice
    sample_rate: int = 48000
    latency: str = "low"  # PortAudio suggested latency: 'low', 'high' or seconds as a string
    wasapi_exclusive: bool = False
    input_channel: int = 0  # which input channel carries the voice (0-based)
    # "Send to apps" on Linux: the voice goes to voicegui's own virtual microphone instead of the
    # output device (which is kept for when it is off); the monitor, if chosen, still plays it.
    # Windows and macOS have no such device of ours: there the switch picks a virtual cable as
    # the output, and this stays False.
    virtual_mic: bool = False


@dataclass(frozen=True)
class EngineSettings:
    block_time: float = field(
        default=0.02,
        metadata=_num(
            0.005,
            1.0,
            "s",
            "Block",
            "Audio converted per step. Smaller means less "
            "latency but more compute overhead; neural voices need 0.1 s or more.",
            0.005,
            restart=True,
        ),
    )
    crossfade_time: float = field(
        default=0.01,
        metadata=_num(
            0.0,
            0.2,
            "s",
            "Crossfade",
            "Overlap used to splice consecutive blocks of a windowed voice without clicks.",
            0.005,
            voices=NEURAL + ("passthrough",),
        ),
    )
    extra_left_time: float = field(
        default=0.05,
        metadata=_num(
            0.0,
            5.0,
            "s",
            "Left context",
            "Past audio the voice sees with each "
            "block: more context, steadier output, more compute.",
            0.05,
            voices=NEURAL + ("passthrough",),
        ),
    )
    extra_dit_left_time: float = field(
        default=0.5,
        metadata=_num(
            0.0,
            3.0,
            "s",
            "DiT context",
            "Past audio the diffusion model re-generates "
            "with each block (at most the left context).",
            0.05,
            voices=SEEDVC,
        ),
    )
    extra_right_time: float = field(
        default=0.0,
        metadata=_num(
            0.0,
            0.5,
            "s",
            "Right context",
            "Lookahead: future audio the voice waits for. Adds directly to the latency.",
            0.005,
            voices=NEURAL + ("passthrough",),
        ),
    )
    input_gain_db: float = field(
        default=0.0, metadata=_num(-24.0, 24.0, "dB", "Input gain", "Gain before the voice.", 0.5)
    )
    output_gain_db: float = field(
        default=0.0, metadata=_num(-40.0, 12.0, "dB", "Output gain", "Gain after the voice.", 0.5)
    )
    gate_threshold_db: float = field(
        default=-50.0,
        metadata=_num(
            -90.0,
            0.0,
            "dB",
            "Silence gate",
            "Blocks quieter than this skip the "
            "voice (no compute) and output silence. -90 turns the gate off.",
            1.0,
        ),
    )
    gate_hold_time: float = field(
        default=0.25,
        metadata=_num(
            0.0,
            2.0,
            "s",
            "Gate hold",
            "How long the gate stays open after the level drops, so word endings are not cut.",
            0.05,
        ),
    )
    buffer_margin_time: float = field(
        default=0.0,
        metadata=_num(
            0.0,
            0.5,
            "s",
            "Safety buffer",
            "Extra output buffering against compute spikes. Adds to the latency.",
            0.005,
            restart=True,
        ),
    )
    denoise: bool = field(
        default=False,
        metadata=_flag(
            "Noise suppression",
            "RNNoise cleans the microphone before the gate and the voice. Adds 20 ms of latency "
            "while it is on (at 10 or 20 ms blocks) and a few percent of one CPU core. Switched "
            "off live, it keeps its delay until the next restart so the timing never jumps.",
        ),
    )
    denoise_mix: float = field(
        default=1.0,
        metadata=_num(
            0.0,
            1.0,
            "",
            "Suppression mix",
            "How much of the cleaned signal replaces the microphone's: 1 is full suppression, "
            "lower keeps some of the room (and of the noise).",
            0.05,
        ),
    )
    bypass: bool = False  # hear the dry input (delay-aligned) instead of the voice
    on_voice_error: str = "dry"  # 'dry', 'builtin' (the built-in voice) or 'silence'


@dataclass(frozen=True)
class VoiceSettings:
    voice: str = "dsp"  # 'dsp' (built-in), 'passthrough', 'seedvc', 'rvc'
    pitch: float = field(
        default=0.0,
        metadata=_num(
            -24.0,
            24.0,
            "st",
            "Pitch",
            "Pitch shift in semitones (cents resolution); formants are kept.",
            0.01,
            voices=DSP + NEURAL,
        ),
    )
    formant: float = field(
        default=0.0,
        metadata=_num(
            -12.0,
            12.0,
            "st",
            "Formant",
            "Spectral-envelope shift in semitones: "
            "up sounds smaller (child), down sounds bigger (giant).",
            0.1,
            voices=DSP + RVC,
        ),
    )
    diffusion_steps: int = field(
        default=10,
        metadata=_num(
            1,
            50,
            "",
            "Diffusion steps",
            "Euler steps of the flow-matching solver: more is cleaner and slower.",
            1,
            voices=SEEDVC,
        ),
    )
    cfg_rate: float = field(
        default=0.7,
        metadata=_num(
            0.0,
            1.0,
            "",
            "CFG rate",
            "Classifier-free guidance: higher follows the "
            "reference voice more closely; 0 halves the compute.",
            0.05,
            voices=SEEDVC,
        ),
    )
    max_prompt_time: float = field(
        default=3.0,
        metadata=_num(
            1.0,
            30.0,
            "s",
            "Max prompt",
            "Longest part of the reference used as the diffusion prompt.",
            0.5,
            voices=SEEDVC,
        ),
    )
    style_from_prompt: bool = field(
        default=False,
        metadata=_flag(
            "Style from prompt only",
            "Off: the speaker style (timbre) is measured over the whole reference clip, a "
            "steadier estimate. On: only over its first Max prompt seconds, as upstream "
            "Seed-VC does. The two differ only for a reference longer than Max prompt.",
            voices=SEEDVC,
        ),
    )
    index_rate: float = field(
        default=0.5,
        metadata=_num(
            0.0,
            1.0,
            "",
            "Index rate",
            "How much of the voice model's own recorded speech (its .index) replaces your "
            "content features: higher sounds more like the model's speaker, lower keeps your "
            "articulation clearer. No effect without an index.",
            0.05,
            voices=RVC,
        ),
    )
    protect: float = field(
        default=0.33,
        metadata=_num(
            0.0,
            0.5,
            "",
            "Protect",
            "Keeps breaths and voiceless consonants (s, t, k) from the index so they stay "
            "crisp: lower protects more; 0.5 turns the protection off.",
            0.01,
            voices=RVC,
        ),
    )
    reference: str = ""  # path of the reference clip
    model: str = ""  # RVC: a voice-library name, or the path of a .pth/.onnx voice model
    index: str = ""  # RVC: path of a retrieval .index ('': the library voice's own, if any)
    f0_method: str = "rmvpe"  # RVC pitch estimator, one of F0_METHODS
    backend: str = "torch"  # 'torch' or 'onnx'
    # 'auto', 'fp32', 'fp16', 'bf16', 'int8'. auto: torch picks fp16 on CUDA, bf16 on a CPU with
    # native bf16 (AVX512-BF16/AMX), else fp32; onnx picks int8 on CPU, fp16 on GPU (it has no
    # bf16 graphs: bf16 runs its fp32 ones)
    precision: str = "auto"
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'mps', or 'remote' (a voicegui server)
    remote_address: str = ""  # host:port of the `voicegui serve` server (device 'remote')
    remote_ca: str = ""  # its TLS certificate (or CA) file; '' = no TLS


@dataclass(frozen=True)
class Settings:
    audio: AudioSettings = AudioSettings()
    engine: EngineSettings = EngineSettings()
    voice: VoiceSettings = VoiceSettings()
    schema_version: int = SCHEMA_VERSION

    def validated(self) -> Settings:
        for part in (self.engine, self.voice):
            for f in fields(part):
                spec = f.metadata.get("spec")
                value = getattr(part, f.name)
                if "flag" in f.metadata and not isinstance(value, bool):
                    raise SettingsError(f"{f.name} must be true or false, got {value!r}")
                if spec is None:
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise SettingsError(f"{f.name} must be a number, got {value!r}")
                if not math.isfinite(value) or not spec.lo <= value <= spec.hi:
                    raise SettingsError(
                        f"{spec.label} must be between {spec.lo:g} and {spec.hi:g} {spec.unit}, "
                        f"got {value:g}"
                    )
        if self.engine.on_voice_error not in ("dry", "builtin", "silence"):
            raise SettingsError("on_voice_error must be 'dry', 'builtin' or 'silence'")
        if self.voice.backend not in ("torch", "onnx"):
            raise SettingsError("backend must be 'torch' or 'onnx'")
        if self.voice.precision not in ("auto", "fp32", "fp16", "bf16", "int8"):
            raise SettingsError("precision must be one of auto, fp32, fp16, bf16, int8")
        if self.voice.f0_method not in F0_METHODS:
            raise SettingsError(f"f0 method must be one of {', '.join(F0_METHODS)}")
        if not isinstance(self.voice.model, str) or not isinstance(self.voice.index, str):
            raise SettingsError("the RVC model and index must be names or paths")
        if not isinstance(self.voice.remote_address, str) or not isinstance(
            self.voice.remote_ca, str
        ):
            raise SettingsError("the remote server's address and certificate must be text")
        if not 8000 <= self.audio.sample_rate <= 384000:
            raise SettingsError(f"sample rate {self.audio.sample_rate} Hz is not supported")
        return self

    # ---- JSON round trip -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build settings from JSON data; unknown keys are ignored, missing keys take defaults."""
        if not isinstance(data, dict):
            raise SettingsError("settings must be a JSON object")
        data = migrate(data)

        def build(kind, raw):
            if raw is None:
                return kind()
            if not isinstance(raw, dict):
                raise SettingsError(f"'{kind.__name__}' must be an object")
            known = {f.name: f for f in fields(kind)}
            kwargs = {}
            for name, value in raw.items():
                if name not in known:
                    continue
                default = getattr(kind(), name)
                if isinstance(default, DeviceRef):
                    value = DeviceRef(
                        **{k: str(v) for k, v in (value or {}).items() if k in ("hostapi", "name")}
                    )
                elif isinstance(default, bool):
                    value = bool(value)
                elif isinstance(default, int) and not isinstance(value, bool):
                    if isinstance(value, float) and value.is_integer():
                        value = int(value)
                elif isinstance(default, float) and isinstance(value, int):
                    value = float(value)
                kwargs[name] = value
            return kind(**kwargs)

        try:
            settings = cls(
                audio=build(AudioSettings, data.get("audio")),
                engine=build(EngineSettings, data.get("engine")),
                voice=build(VoiceSettings, data.get("voice")),
            )
        except TypeError as exc:
            raise SettingsError(str(exc)) from exc
        return settings.validated()


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring older preset data up to SCHEMA_VERSION (no older schema exists yet)."""
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SettingsError(
            f"settings schema {version!r} is newer than this app understands ({SCHEMA_VERSION})"
        )
    return data


def spec_of(part: object, name: str) -> Spec | None:
    for f in fields(part):  # type: ignore[arg-type]
        if f.name == name:
            return f.metadata.get("spec")
    return None


def needs_restart(old: Settings, new: Settings) -> bool:
    """True when the change cannot be applied between blocks (devices, rate, block size)."""
    if old.audio != new.audio:
        return True
    return any(
        getattr(old.engine, f.name) != getattr(new.engine, f.name)
        for f in fields(EngineSettings)
        if f.metadata.get("spec") is not None and f.metadata["spec"].restart
    )


def with_changes(settings: Settings, **parts: dict[str, Any]) -> Settings:
    """``with_changes(s, engine={'block_time': 0.05})`` -> a new validated Settings."""
    new = settings
    for part, changes in parts.items():
        new = replace(new, **{part: replace(getattr(new, part), **changes)})
    return new.validated()
