"""Access tokens: the server's (a file only its owner reads), the check on every request, and
the app's store of the tokens it was given (kept out of presets, which people share)."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

from voicegui.remote.protocol import MAX_TOKEN_CHARS

MIN_TOKEN_CHARS = 16
SERVER_TOKEN_FILE = "server-token"
CLIENT_TOKENS_FILE = "remote-tokens.json"


class TokenError(ValueError):
    """A token file that cannot be used (empty, too short, unreadable)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def token_matches(given: object, expected: str) -> bool:
    """Constant-time comparison; anything that is not a string of sane length fails."""
    if not isinstance(given, str) or not given or len(given) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` so that only the owner can read it (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot read the token file {path}: {exc}") from exc
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"the token in {path} is shorter than {MIN_TOKEN_CHARS} characters")
    if len(token) > MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        raise TokenError(f"the token in {path} must be one line without spaces")
    return token


def server_token(path: Path | None) -> tuple[str, Path]:
    """The server's token from ``path`` (made there when missing), or from the default file in
    the config folder."""
    if path is None:
        from voicegui.paths import config_dir

        path = config_dir() / SERVER_TOKEN_FILE
    if not path.exists():
        _write_private(path, new_token() + "\n")
    return read_token_file(path), path


# ---- the app's side ------------------------------------------------------------------------------
def _client_store() -> Path:
    from voicegui.paths import config_dir

    return config_dir() / CLIENT_TOKENS_FILE


def _read_store() -> dict[str, str]:
    try:
        data = json.loads(_client_store().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def saved_token(address: str) -> str:
    """The token the user gave for ``address`` ('' when none)."""
    return _read_store().get(address.strip(), "")


def save_token(address: str, token: str) -> None:
    store = _read_store()
    token = token.strip()
    if token:
        store[address.strip()] = token
    else:
        store.pop(address.strip(), None)
    _write_private(_client_store(), json.dumps(store, indent=1))
