"""One py314/py315 tox env, run inside the forky root (tools/forky_root.sh).

Does what tox does for the host's pyXY-cython / pyXY-pure envs: builds the
package with the PEP 517 backend in an isolated build env (the wheel for
cython, the sdist for pure, installed with BOCADILLO_WS_NO_EXTENSIONS=1),
installs it with the test extra into a venv, checks BACKEND, runs pytest.

    python3.14 tools/forky_env.py cython [pytest args]
    python3.15 tools/forky_env.py pure [pytest args]

The venvs stay in the root between runs (the test dependencies are kept);
the package itself is rebuilt and reinstalled on every run. Built from a copy
of the source tree, so a build inside the root writes nothing into it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
VENVS = Path("/opt/bocadillo_ws/venvs")
# What a copy of the tree for building leaves out: VCS data, envs, caches, build products.
SKIP = {".git", ".tox", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
BACKENDS = {"cython": "cython", "pure": "python"}


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, env=env, cwd=cwd)


def ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP or n.startswith(".venv") or n.endswith((".egg-info", ".so"))}


def venv(name: str) -> Path:
    """The env's venv, made once; remade when its interpreter no longer runs."""
    path = VENVS / name
    python = path / "bin" / "python"
    if path.exists() and subprocess.run([python, "-c", "import pip"], capture_output=True).returncode != 0:
        shutil.rmtree(path)
    if not path.exists():
        run(sys.executable, "-m", "venv", path)
        run(python, "-m", "pip", "install", "-q", "--upgrade", "pip", "build")
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BACKENDS:
        sys.exit(f"usage: python3.X {sys.argv[0]} cython|pure [pytest args]")
    backend, pytest_args = argv[0], argv[1:]
    name = f"py{sys.version_info[0]}{sys.version_info[1]}-{backend}"
    VENVS.mkdir(parents=True, exist_ok=True)
    # One run per venv at a time (two at once would reinstall under each other).
    lock = open(VENVS / f"{name}.lock", "w")  # held until the process ends
    fcntl.flock(lock, fcntl.LOCK_EX)
    python = venv(name)
    env = dict(os.environ, HYPOTHESIS_PROFILE=os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    if backend == "pure":
        env["BOCADILLO_WS_NO_EXTENSIONS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        source, dist = Path(tmp) / "src", Path(tmp) / "dist"
        shutil.copytree(PROJECT, source, ignore=ignore, symlinks=True)
        run(python, "-m", "build", "--wheel" if backend == "cython" else "--sdist", "--outdir", dist, source, env=env)
        (artifact,) = dist.iterdir()
        run(python, "-m", "pip", "uninstall", "-q", "-y", "bocadillo_ws", env=env)
        run(python, "-m", "pip", "install", "-q", f"{artifact}[test]", env=env)
    want = BACKENDS[backend]
    check = f"import sys, bocadillo_ws as b; sys.exit(None if b.BACKEND == {want!r} else f'BACKEND={{b.BACKEND!r}}')"
    run(python, "-I", "-c", check, env=env)
    versions = "import sys, starlette as s, bocadillo_ws as b; "
    versions += "print(sys.version, '| starlette', s.__version__, '| bocadillo_ws backend', b.BACKEND)"
    run(python, "-I", "-c", versions, env=env)
    # -I, from the project root: the installed package, not the source tree's bocadillo_ws/.
    extra = ["--no-c-extensions"] if backend == "pure" else []
    return subprocess.run([str(python), "-I", "-m", "pytest", *extra, *pytest_args], env=env, cwd=PROJECT).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"forky_env.py: {exc}")
