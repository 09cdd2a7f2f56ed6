"""The remote voice a voice setting asks for (Seed-VC or RVC on a `voicegui serve` server),
built one way for the app, the command line and the bench."""

from __future__ import annotations

from voicegui.remote.client import RemoteSeedVC, RemoteVoice
from voicegui.remote.rvc_client import RemoteRvc
from voicegui.settings import VoiceSettings
from voicegui.voices.rvc import live_values


def remote_voice(
    settings: VoiceSettings,
    token: str,
    *,
    progress=None,
    speech_detector=None,
) -> RemoteVoice:
    """Connected; an RVC stream has started with the setting's values (Seed-VC's starts when
    it gets its reference: ``prepare``; the engine sends the rest with the first block).
    Raises VoiceError (RemoteError) saying why not."""
    address, ca = settings.remote_address, settings.remote_ca or None
    if settings.voice == "rvc":
        voice: RemoteVoice = RemoteRvc(
            address,
            token,
            ca,
            model=settings.model,
            index=settings.index,
            f0=settings.f0_method,
            progress=progress,
            speech_detector=speech_detector,
        )
        voice.update(live_values(settings))
        return voice
    return RemoteSeedVC(address, token, ca, speech_detector=speech_detector)
