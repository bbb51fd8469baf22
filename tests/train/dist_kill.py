"""Run under torchrun by test_train_distributed as ``dist_kill.py KILLED.yaml STEP``: train KILLED, in which
rank 1 dies hard (``os._exit``) right after optimizer step STEP, as a killed machine would; torchrun then
stops the other rank."""

from __future__ import annotations

import os
import sys

from glmkit.train.config import load_config
from glmkit.train.loop import run


def main() -> None:
    killed, at = load_config(sys.argv[1]), int(sys.argv[2])

    def die(step: int) -> None:
        if step == at and os.environ.get("RANK") == "1":
            os._exit(17)

    run(killed, on_step=die, progress=None)


if __name__ == "__main__":
    main()
