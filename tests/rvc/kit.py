"""The RVC parity kit: inputs, expected outputs and random-weight checkpoints (fixtures of the
whole run, registered in tests/conftest.py, so that every folder shares one install).

The kit folder comes from VOICEGUI_RVC_FIXTURES (default: ../shared/fixtures/rvc next to the
repository), so the same tests run unchanged against any kit made the same way (its README).
Checkpoints (about 700 MB, ~6 s) are written once by the kit's own make_checkpoints.py, in the
upstream `assets/` layout, and cached under test-output/.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.parity_kits import kit_arrays, kit_folder, present_kit

REPO = Path(__file__).resolve().parents[2]
KIT_VARIABLE = "VOICEGUI_RVC_FIXTURES"


def rvc_kit_dir() -> Path:
    return kit_folder("rvc", KIT_VARIABLE)


@pytest.fixture(scope="session")
def rvc_kit() -> Path:
    return present_kit(rvc_kit_dir(), "RVC", KIT_VARIABLE)


@pytest.fixture(scope="session")
def rvc_inputs(rvc_kit: Path) -> dict[str, np.ndarray]:
    return kit_arrays(rvc_kit / "inputs.npz")


@pytest.fixture(scope="session")
def rvc_expected(rvc_kit: Path) -> dict[str, np.ndarray]:
    return kit_arrays(rvc_kit / "expected.npz")


def _kit_fingerprint(kit: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(kit.glob("keys_*.json")) + [kit / "make_checkpoints.py"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_rvc_assets(kit: Path) -> Path:
    """The `assets/` folder the kit's script writes: hubert_base/, rmvpe/rmvpe.pt, weights/*.pth,
    indices/*.index (the layout of an RVC install), built once per kit."""
    out = REPO / "test-output" / "rvc-checkpoints" / _kit_fingerprint(kit)
    done = out / ".complete"
    if not done.is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(kit / "make_checkpoints.py"), "--out", str(out), "--index"],
            check=True,
            capture_output=True,
        )
        done.write_text("ok")
    return out / "assets"


@pytest.fixture(scope="session")
def rvc_assets(rvc_kit: Path) -> Path:
    return build_rvc_assets(rvc_kit)


# ---- a user folder with the shared weights installed --------------------------------------------
@pytest.fixture(scope="session")
def rvc_installed_weights(rvc_assets, tmp_path_factory) -> Path:
    """The RVC shared weights installed from the kit's assets/ as `voicegui models import rvc
    DIR` does, once per session: the installed models/rvc folder."""
    home = tmp_path_factory.mktemp("rvc-installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEGUI_HOME", str(home))
        from voicegui import modelhub, paths

        modelhub.import_dir("rvc", rvc_assets)
        return paths.models_dir() / "rvc"


@pytest.fixture
def rvc_home(rvc_installed_weights, voicegui_home) -> Path:
    """This test's own VOICEGUI_HOME (an empty voice library) with the shared weights installed
    (its models/rvc links to the session's install)."""
    from voicegui import paths

    (paths.models_dir() / "rvc").symlink_to(rvc_installed_weights, target_is_directory=True)
    return voicegui_home
