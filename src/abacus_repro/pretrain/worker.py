"""One training rank: ``python -m abacus_repro.pretrain.worker SPEC.json`` (started by torchrun or srun).

SPEC holds ``train_phase``'s settings and paths as written by ``launch.run_phase``. Rank 0 logs at INFO, the
others at WARNING, all to stderr (the rule's log).
"""

from __future__ import annotations

import logging
import sys

from .engine import world_from_env
from .launch import read_spec


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m abacus_repro.pretrain.worker SPEC.json", file=sys.stderr)
        return 2
    world = world_from_env()
    logging.basicConfig(
        level=logging.INFO if world.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {world.rank}] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings, paths = read_spec(argv[0])
    from .trainer import train_phase

    train_phase(settings, paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
