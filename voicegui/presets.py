"""PresetStore: named settings saved as JSON, with atomic writes and corrupt files kept aside.

User presets live in ``paths.presets_dir()``; the presets shipped in resources/presets are offered
too (read-only: saving under their name writes a user copy). A preset that cannot be read is
renamed to ``<name>.corrupt-<time>.json``, reported, and never overwritten silently.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from voicegui import paths
from voicegui.settings import SCHEMA_VERSION, Settings, SettingsError

_BAD_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


class PresetError(RuntimeError):
    pass


@dataclass(frozen=True)
class Preset:
    name: str
    settings: Settings
    builtin: bool = False
    path: Path | None = None


@dataclass
class LoadReport:
    """What went wrong while listing presets (corrupt files moved aside)."""

    quarantined: list[tuple[Path, str]] = field(default_factory=list)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def preset_to_json(name: str, settings: Settings) -> str:
    return (
        json.dumps(
            {"name": name, "schema_version": SCHEMA_VERSION, "settings": settings.to_dict()},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


def preset_from_json(text: str, fallback_name: str) -> tuple[str, Settings]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise PresetError("not a voicegui preset (no 'settings' object)")
    try:
        settings = Settings.from_dict(
            {**data["settings"], "schema_version": data.get("schema_version", SCHEMA_VERSION)}
        )
    except SettingsError as exc:
        raise PresetError(str(exc)) from exc
    name = data.get("name") if isinstance(data.get("name"), str) else fallback_name
    return name or fallback_name, settings


class PresetStore:
    def __init__(self, folder: Path | None = None, builtin_folder: Path | None = None) -> None:
        self.folder = folder or paths.presets_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.builtin_folder = builtin_folder or paths.resource("presets")
        self.report = LoadReport()

    # ---- names and files ------------------------------------------------------------------
    @staticmethod
    def validate_name(name: str) -> str:
        name = name.strip()
        if not name:
            raise PresetError("a preset needs a name")
        if _BAD_CHARS.search(name) or name in (".", ".."):
            raise PresetError(f"'{name}' contains characters that cannot be used in a file name")
        if len(name) > 100:
            raise PresetError("preset names are limited to 100 characters")
        return name

    def path_for(self, name: str) -> Path:
        return self.folder / f"{self.validate_name(name)}.json"

    def _quarantine(self, path: Path, why: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.stem}.corrupt-{stamp}.json")
        n = 1
        while aside.exists():
            aside = path.with_name(f"{path.stem}.corrupt-{stamp}-{n}.json")
            n += 1
        path.rename(aside)
        self.report.quarantined.append((aside, why))
        return aside

    def _read(self, path: Path, builtin: bool) -> Preset | None:
        try:
            name, settings = preset_from_json(path.read_text(encoding="utf-8"), path.stem)
        except (PresetError, OSError, UnicodeDecodeError) as exc:
            if builtin:
                return None  # a broken shipped preset is a packaging bug, not user data
            self._quarantine(path, str(exc))
            return None
        return Preset(path.stem if not builtin else name, settings, builtin, path)

    # ---- public API -----------------------------------------------------------------------
    def list(self) -> list[Preset]:
        """User presets and built-ins (a user preset hides a built-in of the same name)."""
        found: dict[str, Preset] = {}
        if self.builtin_folder.is_dir():
            for path in sorted(self.builtin_folder.glob("*.json")):
                p = self._read(path, builtin=True)
                if p is not None:
                    found[p.name] = p
        for path in sorted(self.folder.glob("*.json")):
            if ".corrupt-" in path.name:
                continue
            p = self._read(path, builtin=False)
            if p is not None:
                found[p.name] = p
        return sorted(found.values(), key=lambda p: (p.builtin, p.name.lower()))

    def names(self) -> list[str]:
        return [p.name for p in self.list()]

    def load(self, name: str) -> Preset:
        for p in self.list():
            if p.name == name:
                return p
        bad = [f"{a.name} ({why})" for a, why in self.report.quarantined if a.stem.startswith(name)]
        if bad:
            raise PresetError(f"preset '{name}' was corrupt and has been kept aside as {bad[-1]}")
        raise PresetError(f"no preset named '{name}' (have: {', '.join(self.names()) or 'none'})")

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def save(self, name: str, settings: Settings, overwrite: bool = False) -> Preset:
        path = self.path_for(name)
        if path.exists() and not overwrite:
            raise PresetError(f"a preset named '{name}' already exists")
        atomic_write_text(path, preset_to_json(name, settings.validated()))
        return Preset(name, settings, False, path)

    def rename(self, old: str, new: str) -> Preset:
        src, dst = self.path_for(old), self.path_for(new)
        if not src.is_file():
            raise PresetError(f"'{old}' is not a user preset (built-in presets cannot be renamed)")
        if dst.exists():
            raise PresetError(f"a preset named '{new}' already exists")
        settings = self.load(old).settings
        atomic_write_text(dst, preset_to_json(new, settings))
        src.unlink()
        return Preset(new, settings, False, dst)

    def delete(self, name: str) -> None:
        path = self.path_for(name)
        if not path.is_file():
            raise PresetError(f"'{name}' is not a user preset (built-in presets cannot be deleted)")
        path.unlink()

    def export(self, name: str, dest: Path) -> Path:
        atomic_write_text(Path(dest), preset_to_json(name, self.load(name).settings))
        return Path(dest)

    def import_file(self, src: Path, overwrite: bool = False) -> Preset:
        src = Path(src)
        try:
            text = src.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"cannot read {src.name}: {exc}") from exc
        name, settings = preset_from_json(text, src.stem)
        name = self.validate_name(_BAD_CHARS.sub("_", name))
        if self.exists(name) and not overwrite:
            base, n = name, 2
            while self.exists(f"{base} ({n})"):
                n += 1
            name = f"{base} ({n})"
        return self.save(name, settings, overwrite=True)


class AppState:
    """Small JSON of what should come back on start: last preset, window geometry, last settings."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / "state.json"

    def load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def save(self, data: dict) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def update(self, **changes) -> None:
        data = self.load()
        data.update(changes)
        self.save(data)
