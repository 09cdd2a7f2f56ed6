"""Recording the converted voice (and optionally the dry input) to WAV or FLAC while it plays.

The engine's block thread hands each block to ``TakeRecorder.feed``, which only copies it into a
preallocated ring; a writer thread drains the ring into the file, flushing about twice a second
(a WAV's header is rewritten on each flush, so a crash leaves a valid file holding all but the
last half second). When writing fails (a full disk, a file-size limit, a folder that went away),
the writer closes the file (the header then matches what reached the disk), remembers why, and
calls ``on_error``: the voice changer itself keeps running.

No PortAudio and no Qt here: soundfile and numpy only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from voicegui import paths
from voicegui.audio.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}
RING_SECONDS = 8.0  # audio the ring holds while the disk is slow before blocks are dropped
WRITE_EVERY = 0.1  # s between the writer's drains
FLUSH_EVERY = 0.5  # s between flushes (a WAV's header is updated on each)
DRY_SUFFIX = "-dry"


class RecordingError(RuntimeError):
    """A recording cannot start; the message says why in words for the user."""


def safe_name(text: str) -> str:
    """``text`` usable in a file name on every OS (non-ASCII letters stay)."""
    text = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', "_", text).strip(" ._")
    return text[:60]


def default_path(
    preset: str = "", fmt: str = "wav", now: datetime | None = None, folder: str | Path = ""
) -> Path:
    """A fresh file in ``folder`` (default: the recordings folder), named by date and preset."""
    ext = "." + fmt.lower().lstrip(".")
    if ext not in FORMATS:
        raise RecordingError(f"unknown recording format '{fmt}' (WAV or FLAC)")
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = safe_name(preset)
    base = f"voicegui-{stamp}" + (f"-{name}" if name else "")
    folder = Path(folder) if folder else paths.recordings_dir()
    path, n = folder / f"{base}{ext}", 2
    while path.exists() or dry_path(path).exists():
        path, n = folder / f"{base}-{n}{ext}", n + 1
    return path


def dry_path(path: Path) -> Path:
    """Where the dry input goes next to the recording at ``path``."""
    return path.with_name(path.stem + DRY_SUFFIX + path.suffix)


def describe_os_error(exc: BaseException, detail: str = "") -> str:
    """Why writing failed, for the user (``detail``: libsndfile's own words, which name the
    system's error where its exception says only "System error")."""
    text = f"{exc} {detail}"
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left" in text:
        return "the disk is full"
    if code == errno.EFBIG or "File too large" in text:
        return "the file reached the largest size this system allows"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or any(
        t in text for t in ("ermission denied", "Read-only file system")
    ):
        return "the folder cannot be written to"
    if code in (errno.ENOTDIR, errno.EEXIST) or "Not a directory" in text:
        return "it is not a folder (a file of that name is in the way)"
    text = (detail or str(exc)).removeprefix("System error : ").strip().rstrip(".")
    return text or type(exc).__name__


def _libsndfile_detail(f) -> str:
    """libsndfile's last error on ``f``, e.g. "System error : No space left on device."."""
    try:
        import soundfile as sf

        text = sf._ffi.string(sf._snd.sf_strerror(f._file)).decode("utf-8", "replace")
    except Exception:
        return ""
    return "" if text.startswith("No Error") else text


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


class TakeRecorder:
    """One recording: ``start``, ``feed`` from the block thread, ``stop`` from anywhere."""

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        with_dry: bool = False,
        on_error: Callable[[str], None] | None = None,
        ring_seconds: float = RING_SECONDS,
        dry_delay: int = 0,
    ) -> None:
        """``dry_delay``: samples the voice lags its input by; the dry file is delayed as much,
        so that both files line up sample for sample (and have the same length)."""
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in FORMATS:
            raise RecordingError(
                f"cannot record to '{self.path.name}': the name must end in .wav or .flac"
            )
        self.format, self.subtype = FORMATS[ext]
        self.dry_path = dry_path(self.path) if with_dry else None
        self.sample_rate = int(sample_rate)
        self.on_error = on_error or (lambda message: None)
        capacity = max(1, round(ring_seconds * self.sample_rate))
        self._ring = RingBuffer(capacity)
        self._dry_ring = RingBuffer(capacity + dry_delay) if with_dry else None
        self.dry_delay = max(0, int(dry_delay)) if with_dry else 0
        self._dry_written = 0
        self._files: list = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.taking = False  # the block thread copies blocks in while True
        self.frames_fed = 0  # frames the block thread handed over (dropped ones included)
        self.frames_written = 0  # frames that reached the file
        self.error = ""
        self.started_at = 0.0
        self.stopped_at: float | None = None

    # ---- control (host command thread) -------------------------------------------------------
    def start(self) -> TakeRecorder:
        import soundfile as sf

        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for p in (self.path, self.dry_path):
                if p is not None:
                    open(p, "wb").close()  # noqa: SIM115 (the OS's reason, if it refuses)
                    self._files.append(
                        sf.SoundFile(
                            str(p), "w", self.sample_rate, 1, self.subtype, format=self.format
                        )
                    )
        except (OSError, sf.LibsndfileError) as exc:
            self._close_files()
            for p in (self.path, self.dry_path):
                with contextlib.suppress(OSError):
                    if p is not None and p.stat().st_size <= 44:
                        p.unlink()  # an empty header is no recording
            why = describe_os_error(exc)
            advice = "Free some space or choose" if why == "the disk is full" else "Choose"
            raise RecordingError(
                f"Cannot record to {folder}: {why}. {advice} another folder for recordings."
            ) from exc
        self.started_at = time.monotonic()
        self.taking = True
        self._thread = threading.Thread(target=self._write_loop, name="voicegui-recording",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        log.info("recording to %s (%d Hz)", self.path, self.sample_rate)
        return self

    def stop(self) -> dict:
        """Finish the file (everything fed so far is written) and say what was recorded."""
        self.taking = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return self.state()

    @property
    def running(self) -> bool:
        return self._thread is not None and self.taking

    @property
    def dropped(self) -> int:
        """Frames lost because the disk did not keep up (the ring was full)."""
        return self._ring.overflows

    def state(self) -> dict:
        size = 0
        for p in (self.path, self.dry_path):
            if p is not None:
                with contextlib.suppress(OSError):
                    size += p.stat().st_size
        end = self.stopped_at if self.stopped_at is not None else time.monotonic()
        return {
            "running": self.running,
            "path": str(self.path),
            "dry_path": str(self.dry_path) if self.dry_path is not None else "",
            "sample_rate": self.sample_rate,
            "elapsed": end - self.started_at if self.started_at else 0.0,
            "frames": self.frames_written,
            "fed": self.frames_fed,
            "seconds": self.frames_written / self.sample_rate,
            "bytes": size,
            "dropped": self.dropped,
            "error": self.error,
        }

    # ---- block thread ------------------------------------------------------------------------
    def feed(self, dry: np.ndarray, out: np.ndarray) -> None:
        """Copy one block in (the dry input and the output the devices play). No allocation."""
        if not self.taking:
            return
        self._ring.write(out)
        if self._dry_ring is not None:
            self._dry_ring.write(dry)
        self.frames_fed += len(out)

    # ---- writer thread -----------------------------------------------------------------------
    def _write_loop(self) -> None:
        chunk = np.zeros(max(1, self.sample_rate // 4), dtype=np.float32)
        dry_chunk = np.zeros_like(chunk) if self._dry_ring is not None else None
        flushed = time.monotonic()
        try:
            if self.dry_delay and len(self._files) > 1:
                self._files[1].write(np.zeros(self.dry_delay, dtype=np.float32))
                self._dry_written = self.dry_delay
            while True:
                stopping = self._stop.wait(WRITE_EVERY)
                self._drain(chunk, dry_chunk)
                if stopping:
                    break
                now = time.monotonic()
                if now - flushed >= FLUSH_EVERY:
                    flushed = now
                    for f in self._files:
                        f.flush()
        except Exception as exc:  # a full disk, a size limit, a vanished folder
            self.taking = False
            self.stopped_at = time.monotonic()
            detail = " ".join(filter(None, (_libsndfile_detail(f) for f in self._files)))
            self._close_files()
            secs = self._saved_seconds()
            why = describe_os_error(exc, detail)
            if why in ("System error", "LibsndfileError") and _disk_full(self.path.parent):
                why = "the disk is full"
            self.error = (
                f"Recording stopped: {why} ({self.path.parent}). "
                f"The first {secs:.1f} s are saved in {self.path.name}; "
                "the voice changer keeps running."
            )
            log.warning("%s (%s: %s)", self.error, type(exc).__name__, exc)
            self.on_error(self.error)
            return
        self._close_files()
        log.info("recording finished: %s, %d frames", self.path, self.frames_written)

    def _drain(self, chunk: np.ndarray, dry_chunk: np.ndarray | None) -> None:
        ring, dry_ring = self._ring, self._dry_ring
        while True:
            n = ring.available()
            if dry_ring is not None:
                n = min(n, dry_ring.available())
            n = min(n, len(chunk))
            if n <= 0:
                return
            ring.read_into(chunk[:n])
            self._files[0].write(chunk[:n])
            self.frames_written += n
            if dry_ring is not None and dry_chunk is not None:
                # as long as the take: the last ``dry_delay`` samples stay in the ring
                m = min(self.frames_written - self._dry_written, dry_ring.available())
                if m > 0:
                    dry_ring.read_into(dry_chunk[:m])
                    self._files[1].write(dry_chunk[:m])
                    self._dry_written += m

    def _close_files(self) -> None:
        files, self._files = self._files, []
        for f in files:
            try:
                f.close()  # rewrites the header to match what reached the disk
            except Exception:
                log.exception("closing %s failed", getattr(f, "name", "the recording"))

    def _saved_seconds(self) -> float:
        import soundfile as sf

        if self.format == "FLAC":
            for p in (self.path, self.dry_path):
                if p is not None:
                    repair_flac(p)
        try:
            frames = sf.info(str(self.path)).frames
        except Exception:
            frames = 0
        if 0 <= frames <= self.frames_written:
            self.frames_written = frames
        return self.frames_written / self.sample_rate


def repair_flac(path: Path) -> int:
    """A FLAC file cut short (its encoder never finished) says "length unknown" in its header,
    which some readers refuse: count the frames that decode and write that count into the header
    in place (the file does not grow, so this works on a full disk). Returns the count."""
    import soundfile as sf

    frames = 0
    try:
        with sf.SoundFile(str(path)) as f:
            chunk = np.zeros(1024, dtype=np.float32)
            while True:
                n = f.read(out=chunk, frames=len(chunk)).shape[0]
                frames += n
                if n < len(chunk):
                    break
    except Exception:
        pass  # the cut-off end: what decoded before it counts
    try:
        with open(path, "r+b") as raw:
            head = raw.read(26)
            if len(head) < 26 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
                return frames  # no STREAMINFO where the format puts it
            fields = int.from_bytes(head[18:26], "big")
            if fields & ((1 << 36) - 1):
                return frames  # the encoder finished: the header knows the length
            raw.seek(18)
            raw.write((fields | frames).to_bytes(8, "big"))
    except OSError:
        log.warning("cannot write the length into %s", path)
    return frames
