"""Replays what the fuzzer kept: every input in fuzz/crashes/ and the seeds.

    pytest fuzz/            # or: python fuzz/fuzz_codec.py --replay fuzz/crashes/*

Each input runs through the same differential check as the fuzzer
(fuzz/fuzz_codec.py, no atheris needed): the compiled and pure backends
must agree and keep the contract. A crashing input stays in fuzz/crashes/
after its fix, as a regression test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_codec  # noqa: E402

pytestmark = pytest.mark.c_extension  # compares against the compiled backend


def inputs(folder: str) -> list[Path]:
    path = HERE / folder
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_file() and p.name != "README.md" and not p.name.startswith("."))


CRASHES = inputs("crashes")
SEEDS = inputs("seeds")


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.name) for p in CRASHES]
    or [pytest.param(None, id="none", marks=pytest.mark.skip(reason="no crashing input kept in fuzz/crashes/"))],
)
def test_crashing_input_no_longer_fails(path: Path) -> None:
    fuzz_codec.check_one_input(path.read_bytes())


# The disagreement fuzz/crashes/crash-605e5a69... found (a nested value near
# the recursion limit): replayed at one fixed stack depth it may or may not
# straddle the boundary, so this scans the depths around it, both backends
# called from the very same frame depth.
NESTING_CASES = [
    pytest.param("send_json", "json", id="send_json-json"),
    pytest.param("send_json", "orjson", id="send_json-orjson"),
    pytest.param("send_json", "ujson", id="send_json-ujson"),
    pytest.param("receive_json", "json", id="receive_json-json"),
    pytest.param("receive_json", "orjson", id="receive_json-orjson"),
    pytest.param("receive_json", "ujson", id="receive_json-ujson"),
]


def brief(outcome: tuple[list[tuple[object, ...]], object, object, object]) -> str:
    step = outcome[0][0]
    return "a value" if step[0] == "value" else f"{step[1].__name__}({step[2]!r})"  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "codec"), NESTING_CASES)
def test_nesting_limit_is_the_same_for_both_backends(method: str, codec: str) -> None:
    backends = fuzz_codec.backends()
    tried = 0
    for depth in range(900, 1100, 1):
        if method == "send_json":
            value: object = 0
            for _ in range(depth):
                value = [value]
            steps = [lambda ws, value=value: ws.send_json(value)]
            events: list[dict[str, object]] = []
        else:
            steps = [lambda ws: ws.receive_json()]
            events = [{"type": "websocket.receive", "text": "[" * depth + "]" * depth}]
        options = {"json_codec": codec}
        compiled = fuzz_codec.outcome(backends.compiled, events, steps, options)
        pure = fuzz_codec.outcome(backends.pure, events, steps, options)
        assert fuzz_codec.normalise(compiled[0]) == fuzz_codec.normalise(pure[0]), (
            f"{method} of {depth} nested lists with {codec}: compiled {brief(compiled)}, pure {brief(pure)}"
        )
        tried += 1
    assert tried == 200


# The sdist leaves the seed corpus out (MANIFEST.in): only there is the folder absent.
@pytest.mark.skipif(not (HERE / "seeds").is_dir(), reason="no fuzz/seeds/ (the sdist does not ship the seed corpus)")
def test_seed_inputs_pass() -> None:
    assert SEEDS, "fuzz/seeds/ is empty"
    for path in SEEDS:
        fuzz_codec.check_one_input(path.read_bytes())


def test_the_harness_detects_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that returns something else for one payload must make the check fail."""
    backends = fuzz_codec.backends()
    original = backends.pure.receive_json

    async def off_by_one(self, mode="text"):  # type: ignore[no-untyped-def]
        value = await original(self, mode)
        return value + 1 if isinstance(value, int) and not isinstance(value, bool) else value

    monkeypatch.setattr(backends.pure, "receive_json", off_by_one)
    data = bytes([3, 2, 0]) + b"41"  # receive_json of the text frame "41", json codec
    with pytest.raises(fuzz_codec.Mismatch, match="backends disagree"):
        fuzz_codec.check_one_input(data)
