"""Running a rule script as Snakemake's script directive does, with a stand-in ``snakemake`` object."""

from __future__ import annotations

import contextlib
import runpy
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


class Named(list):
    """Snakemake's Namedlist in miniature: a list whose named entries are also attributes (and items())."""

    def __init__(self, **named):
        super().__init__(named.values())
        self._names = dict(named)
        for key, value in named.items():
            setattr(self, key, value)

    def items(self):
        return self._names.items()


def run_script(
    name: str, tmp: Path, wildcards: dict, input: dict, output: dict, params: dict, resources: dict | None = None
) -> None:
    snakemake = type("Snakemake", (), {})()
    snakemake.input, snakemake.output, snakemake.params = Named(**input), Named(**output), Named(**params)
    snakemake.wildcards = Named(**wildcards)
    snakemake.resources = Named(**(resources or {"nodes": 1, "gpus": 0, "gres": ""}))
    snakemake.log = Named(log=str(tmp / "logs" / f"{name}.log"))
    snakemake.threads = 1
    snakemake.rule = name
    (tmp / "logs").mkdir(exist_ok=True)
    # Snakemake runs a job in its run directory, where run_rule writes the job's record (logs/jobs/).
    with contextlib.chdir(tmp):
        runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": snakemake}, run_name="__main__")
    assert (tmp / "logs/jobs" / name).is_dir()
