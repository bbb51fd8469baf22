"""Run under torchrun by test_train_distributed as ``dist_kill.py WHOLE.yaml KILLED.yaml STEP``: train WHOLE
to its end, then KILLED, in which rank 1 dies hard (``os._exit``) right after optimizer step STEP, as a killed
machine would; torchrun then stops the other rank."""

from __future__ import annotations

import os
import sys

from glmkit.train.config import load_config
from glmkit.train.loop import run


def main() -> None:
    whole, killed, at = load_config(sys.argv[1]), load_config(sys.argv[2]), int(sys.argv[3])
    run(whole, progress=None)

    def die(step: int) -> None:
        if step == at and os.environ.get("RANK") == "1":
            os._exit(17)

    run(killed, on_step=die, progress=None)


if __name__ == "__main__":
    main()
