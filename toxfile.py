"""tox's inline plugin: the `forky` runner of the py314/py315 envs.

Their Python is not on the host: it runs inside a Debian forky root
(tools/forky_root.sh, tools/forky_env.py). The env itself is a host venv
(basepython python3.11) that only starts those scripts, so its name's
py314/py315 factor must not ask tox for a host python3.14/3.15.
"""

from __future__ import annotations

from tox.plugin import impl
from tox.tox_env.python.virtual_env.runner import VirtualEnvRunner
from tox.tox_env.register import ToxEnvRegister


class ForkyRunner(VirtualEnvRunner):
    """A virtualenv runner that takes no Python version from the env's name."""

    @staticmethod
    def id() -> str:
        return "forky"

    @classmethod
    def extract_base_python(cls, env_name: str) -> str | None:
        return None


@impl
def tox_register_tox_env(register: ToxEnvRegister) -> None:
    register.add_run_env(ForkyRunner)
