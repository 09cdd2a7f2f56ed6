#!/usr/bin/env bash
# Installs everything voicegui needs on Debian/Ubuntu: system packages, a virtualenv in .venv,
# CPU PyTorch and the package itself (editable). Safe to run again: it skips what is done.
#   scripts/setup.sh          app only
#   scripts/setup.sh --test   app + test tools + the voice server's environment (.venv-serve)
#   scripts/setup.sh --serve  the voice server's environment only (`voicegui serve`)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
WITH_SERVE=0
[ "${1:-}" = "--test" ] && WITH_TEST=1 && WITH_SERVE=1
[ "${1:-}" = "--serve" ] && WITH_SERVE=1
# The server's own environment: PyTriton pins numpy < 2, the app uses numpy 2. Only what the
# served voices need (no GUI, no audio devices); the project itself goes in without its deps.
SERVE_PACKAGES=(
  "numpy>=1.26,<2" "nvidia-pytriton>=0.7" scipy soxr soundfile platformdirs psutil
  "transformers>=4.40" "safetensors>=0.4" "huggingface_hub>=0.23"
  "faiss-cpu>=1.8"                     # RVC voices' .index files
  "onnxruntime-gpu>=1.18"              # RVC voices as .onnx files
)

APT_PACKAGES=(
  libportaudio2 libsndfile1            # audio I/O and files
  jackd2                               # JACK server (dummy driver for tests and the loopback bench)
  espeak-ng                            # speech for tests
  openssl                              # self-signed certificates for the Remote GPU TLS tests
  xvfb xauth                           # a virtual screen for the real-window test
  xdotool dbus                         # hotkey tests: keys typed into another window; a D-Bus
  gcc libc6-dev linux-libc-dev python3-dev  # pynput needs evdev on Linux, built from source
  # what Qt's xcb platform plugin loads
  libxcb1 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1
  libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1
  libdbus-1-3 fonts-dejavu-core
  # what Qt's Wayland platform plugin, shell integrations and decorations load (bundled too)
  libwayland-client0 libwayland-cursor0 libwayland-egl1
  # what the bundle always takes from the user's system (packaging/bundle_config.py
  # SYSTEM_ONLY_LIBS); the packages above depend on them, named here so the bundle check's
  # needs are all in this list
  libasound2 libx11-6 libfreetype6 libexpat1
  binutils                             # strip and readelf, for smaller bundles (packaging/)
  desktop-file-utils                   # the bundle smoke test validates the installed menu entry
  libpulse0                            # Send to apps (Linux): the virtual microphone (pulsectl)
)
if [ "$WITH_TEST" = 1 ]; then
  # A headless PipeWire for the Send to apps tests (and for Wine's WASAPI/MME/DirectSound in the
  # Windows app's test): its Pulse server, session manager and the D-Bus it needs; pipewire-alsa
  # is the ALSA device PortAudio reaches it by; pw-record and pactl play the other program.
  # Only with --test: pipewire-alsa replaces a PulseAudio desktop's own.
  APT_PACKAGES+=(pipewire pipewire-pulse wireplumber pipewire-alsa pipewire-bin pulseaudio-utils dbus)
  # the Windows app, built and tested on Linux (packaging/build.py --os windows): Wine runs the
  # Windows Python and the app, NSIS makes the installer
  APT_PACKAGES+=(wine wine64 libwine nsis)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing system packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "voicegui needs Python 3.11 or newer (found: $("$PYTHON" --version))" >&2
  exit 1
fi
if [ "$WITH_SERVE" = 1 ]; then
  [ -x .venv-serve/bin/python ] || "$PYTHON" -m venv .venv-serve
  SPIP=(.venv-serve/bin/python -m pip install -q --disable-pip-version-check)
  .venv-serve/bin/python -c 'import torch' 2>/dev/null || "${SPIP[@]}" "torch==2.13.0"
  .venv-serve/bin/python -c 'import pytriton, transformers, soxr, faiss, onnxruntime' 2>/dev/null \
    || "${SPIP[@]}" "${SERVE_PACKAGES[@]}"
  "${SPIP[@]}" --no-deps -e . "torchfcpe==0.0.4"  # FCPE's weights, as for the app (below)
  [ "$WITH_TEST" = 1 ] || exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# CPU PyTorch unless one is already installed (see README for a CUDA build).
.venv/bin/python -c 'import torch' 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
if [ "$WITH_TEST" = 1 ]; then
  "${PIP[@]}" -e ".[test]"
  # the pinned Windows Python and wheels for the Windows app's test (cached; fetched once)
  if command -v wine >/dev/null 2>&1; then
    .venv/bin/python packaging/build.py --os windows --flavour lite --download-only
  fi
else
  "${PIP[@]}" -e .
fi

# FCPE pitch estimator for RVC voices: voicegui runs its own FCPE network and only reads the
# trained weights that the torchfcpe wheel ships (torchfcpe/assets/fcpe_c_v001.pt). The wheel's
# declared dependencies (torchaudio, local-attention, einops) are not needed, and torchaudio
# would pull a torch build of its own whose import fails next to this CPU torch, so the wheel
# is installed without them. Not in pyproject's dependencies for the same reason (pip would
# resolve them).
"${PIP[@]}" --no-deps "torchfcpe==0.0.4"
