"""The package on a real free-threaded CPython: pure, and saying why.

    tox -e freethreaded                                   # builds/caches python3.13t first
    python tools/free_threaded_check.py [--python PATH]   # default: tools/free_threaded_python.sh's

1. the interpreter is free-threaded (``Py_GIL_DISABLED``) and runs with the
   GIL off;
2. the sdist, built from a clean copy of the tree, installs there with pip
   (the same install a user gets: no cp3XXt wheel is published), and its build
   prints the pure banner with the free-threaded reason;
3. ``bocadillo_ws.BACKEND == "python"``, ``_backend.PURE_REASON`` names the
   free-threaded build, no ``_codec`` extension is installed, and the GIL is
   still off after the import;
4. the sdist's test suite passes there (``--no-c-extensions``), from outside
   the tree, against the installed package (release_check's probe checks
   where every imported bocadillo_ws module came from).
"""

from __future__ import annotations

import argparse
import email.parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import release_check as rc

FREE_THREADED_REASON = "this CPython is free-threaded (Py_GIL_DISABLED)"
# The test extra installs there but for two: orjson is Rust, publishes no
# cp3XXt wheel, and building it needs a Rust toolchain and crates.io; daphne
# needs autobahn, which needs cffi, which refuses free-threaded 3.13 ("upgrade
# to 3.14t"). Their tests are deselected by name (-k) and the count printed; a
# missing orjson is itself a case the package handles (a clear ImportError).
# trustme needs cryptography, which needs cffi too: its TLS tests (which
# import it where they use it) are deselected by node id.
NOT_ON_FREE_THREADED = {"orjson", "daphne", "trustme"}
# Tests that use orjson without the word in their name (they loop over the codecs), and trustme's.
NEEDS_ORJSON = ["tests/test_json.py::test_ujson_leniencies_are_as_documented", "tests/test_leaks.py"]
NEEDS_TRUSTME = [
    "tests/test_redis_url.py::test_tls_options_make_the_context",
    "tests/test_hub_redis_transports.py::test_tls_with_a_client_certificate",
    "tests/test_hub_redis_transports.py::test_tls_with_a_certificate_no_one_vouches_for_is_refused_at_start",
    "tests/test_hub_redis_transports.py::test_tls_without_the_client_certificate_redis_wants_is_refused",
]
# Some newest releases have no cp3XXt wheel and need Rust to build (hypothesis,
# pydantic-core): --prefer-binary takes the newest release that has a wheel
# for this interpreter, and builds from source only what has none (ujson);
# pydantic-core, pinned exactly by pydantic, must be a wheel, so pip picks
# the newest pydantic whose pydantic-core has one.
WHEELS_ONLY = "pydantic-core"


def test_requirements(sdist: Path) -> list[str]:
    """The sdist's own `test` extra (from its PKG-INFO), less what cannot install on a free-threaded build."""
    with tarfile.open(sdist) as tf:
        (member,) = [m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
        extracted = tf.extractfile(member)
        assert extracted is not None
        metadata = email.parser.Parser().parsestr(extracted.read().decode())
    requirements = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        if "extra" in marker and '"test"' in marker.replace("'", '"'):
            name = re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0]
            if name.lower() not in NOT_ON_FREE_THREADED:
                requirements.append(requirement.strip())
    rc.check(requirements, f"no test extra in {sdist.name}'s PKG-INFO")
    return requirements


def default_python() -> str:
    script = Path(__file__).resolve().parent / "free_threaded_python.sh"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise rc.CheckFailed(f"{script} failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", help="a free-threaded CPython (default: tools/free_threaded_python.sh's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bocadillo-ws-ft-"))
    logs = work / "logs"
    logs.mkdir()
    timings: list[tuple[str, float]] = []
    start = time.monotonic()
    status = 1
    try:
        status = checks(args.python or default_python(), work, logs, timings)
    except rc.CheckFailed as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
    finally:
        print(f"\n  {time.monotonic() - start:6.0f} s  total")
        if args.keep or status != 0:
            print(f"work directory kept: {work} (logs in {logs})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nfree-threaded check PASSED" if status == 0 else "\nfree-threaded check FAILED")
    return status


def checks(python: str, work: Path, logs: Path, timings: list[tuple[str, float]]) -> int:
    with rc.step(f"1. the interpreter: {python}", timings):
        facts = json.loads(
            rc.run(
                [
                    python,
                    "-I",
                    "-c",
                    "import json, sys, sysconfig; print(json.dumps([sys.version, "
                    "sysconfig.get_config_var('Py_GIL_DISABLED'), sys._is_gil_enabled()]))",
                ],
                logs / "interpreter.log",
            )
        )
        version, gil_disabled, gil_enabled = facts
        rc.check(gil_disabled == 1, f"{python} is not a free-threaded build (Py_GIL_DISABLED={gil_disabled})")
        rc.check(not gil_enabled, f"{python} runs with the GIL enabled (PYTHON_GIL=1?)")
        rc.ok(f"CPython {version.split()[0]}, Py_GIL_DISABLED=1, GIL off")

    with rc.step("2. the sdist installed with pip on it", timings):
        files = rc.source_files()
        source = rc.copy_tree(files, work / "src")
        dist = work / "dist"
        rc.run([sys.executable, "-m", "build", "--sdist", "--outdir", dist, source], logs / "build-sdist.log")
        (sdist,) = dist.glob("*.tar.gz")
        venv = rc.Venv(work / "venv-ft", logs, base=python)
        requirements = test_requirements(sdist)
        output = venv.pip_install(
            str(sdist),
            *requirements,
            "--prefer-binary",
            "--only-binary",
            WHEELS_ONLY,
            log="pip-sdist.log",
            verbose=True,
        )
        rc.check(rc.PURE_BANNER in output, f"pip's build of the sdist did not print {rc.PURE_BANNER!r}")
        rc.check(rc.COMPILED_BANNER not in output, "pip's build of the sdist printed the compiled banner")
        rc.check(f"because {FREE_THREADED_REASON}" in output, "the build's banner does not say it is free-threaded")
        rc.ok(f"pip built {sdist.name} pure: {rc.PURE_BANNER!r} ... 'because {FREE_THREADED_REASON} ...'")

    with rc.step("3. the import", timings):
        code = (
            "import json, sys, bocadillo_ws as b, bocadillo_ws._backend as be; "
            "print(json.dumps({'backend': b.BACKEND, 'reason': be.PURE_REASON, 'gil': sys._is_gil_enabled(), "
            "'core': sys.modules[be.WebSocketCore.__module__].__file__, "
            "'package': b.__file__}))"
        )
        report = json.loads(venv.eval(code))
        rc.check(report["backend"] == "python", f"BACKEND={report['backend']!r}")
        rc.check(str(report["reason"]).startswith(FREE_THREADED_REASON), f"PURE_REASON={report['reason']!r}")
        rc.check(venv.installed(report["core"]) and report["core"].endswith("_codec_py.py"), f"{report}")
        rc.check(not report["gil"], "importing bocadillo_ws turned the GIL on")
        rc.ok(f"BACKEND == 'python', PURE_REASON: {report['reason']}")
        rc.ok("WebSocketCore from _codec_py.py in site-packages; the GIL is still off")
        package_dir = Path(report["package"]).parent
        extensions = sorted(p.name for p in package_dir.iterdir() if p.suffix in (".so", ".pyd"))
        rc.check(not extensions, f"the free-threaded install has extension modules: {extensions}")
        rc.ok("no extension module installed")

    tree = work / "tests-tree"
    with tarfile.open(sdist) as tf:
        tf.extractall(tree, filter="data")
    (tree,) = tree.iterdir()
    probe_dir = work / "probe"
    probe_dir.mkdir()
    (probe_dir / "release_probe.py").write_text(rc.PROBE)
    with rc.step("4. the sdist's test suite on it (--no-c-extensions)", timings):
        deselect = " and ".join(f"not {name}" for name in sorted(NOT_ON_FREE_THREADED))
        by_id = [*NEEDS_ORJSON, *NEEDS_TRUSTME]
        rc.ok(f"{' and '.join(sorted(NOT_ON_FREE_THREADED))} not installable here: -k {deselect!r}, {by_id}")
        args = ["-k", deselect, *(f"--deselect={test}" for test in by_id)]
        rc.run_suite(venv, tree, probe_dir, compiled=False, logs=logs, pytest_args=args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
