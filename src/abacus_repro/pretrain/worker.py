"""One training rank: ``python -m abacus_repro.pretrain.worker SPEC.json`` (started by torchrun or srun).

SPEC holds ``train_phase``'s keyword arguments as written by ``launch.run_phase``. Rank 0 logs at INFO, the
others at WARNING, all to stderr (the rule's log).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .engine import world_from_env


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
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    from .trainer import train_phase

    train_phase(**spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
