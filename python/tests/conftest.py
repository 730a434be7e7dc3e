"""Shared fixtures: a repository root (for the CLI binary and the demo model), small archives."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _in_repo_root():
    """Tests run from the repository root, where the default model (models/demo) is found."""
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `skysift` binary cargo built (scripts/test.sh builds it before pytest runs)."""
    for p in (os.environ.get("SKYSIFT_BIN"), ROOT / "target" / "debug" / "skysift", ROOT / "target" / "release" / "skysift"):
        if p and Path(p).is_file():
            return Path(p)
    subprocess.run(["cargo", "build", "--quiet", "--bin", "skysift"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "skysift"


def unit_rows(n: int, dim: int, seed: int = 7) -> np.ndarray:
    r = np.random.default_rng(seed)
    v = r.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """A small archive: 4 scenes of each of 5 classes of samples/aid-mini, with their sidecars."""
    src = ROOT / "samples" / "aid-mini"
    dst = tmp_path_factory.mktemp("archive")
    for cls in ("Airport", "Beach", "Forest", "Port", "Farmland"):
        files = sorted(p for p in (src / cls).iterdir() if p.suffix.lower() in (".jpg", ".png", ".tif"))[:4]
        (dst / cls).mkdir()
        for f in files:
            shutil.copy(f, dst / cls / f.name)
            for side in src.joinpath(cls).glob(f.stem + ".*"):
                if side != f:
                    shutil.copy(side, dst / cls / side.name)
    return dst


@pytest.fixture(scope="session")
def imagery(tmp_path_factory, archive):
    """A database with the small archive imported by the Python API."""
    import skysift

    path = tmp_path_factory.mktemp("imagery") / "db"
    db = skysift.connect(path)
    col = db.create_collection("images")
    report = col.import_archive(archive, device="cpu", progress=False)
    yield path, db, col, report
    db.close()


# Screenshots the browser tests saved (python/tests/test_map.py), printed after the run.
SCREENSHOTS: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    for p in SCREENSHOTS:
        terminalreporter.write_line(f"map browser test: screenshot: {p}")
