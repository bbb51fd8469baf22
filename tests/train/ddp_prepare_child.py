"""Run under torchrun with 2 processes (see test_train_distributed.py): each rank builds the same small
model, rank 1 then shifts every weight by +1, and ``Processes.prepare`` wraps it in DDP. Each rank prints
the sums of its trainable and its frozen weights as one JSON line."""

from __future__ import annotations

import json

import torch

from glmkit.train.config import parse_config
from glmkit.train.distributed import Processes, detect_launch

cfg = parse_config({"method": "lora", "data": "d.jsonl", "output_dir": "out", "max_steps": 1, "batch_size": 1})
launch = detect_launch(cfg)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
for p in model[0].parameters():
    p.requires_grad_(False)  # the base weights
if launch.rank == 1:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
procs = Processes(launch, cfg)
trainable = [p for p in model.parameters() if p.requires_grad]
wrapped, _ = procs.prepare(model, torch.optim.SGD(trainable, lr=0.1))
inner = procs.unwrap(wrapped)
print(
    json.dumps(
        {
            "rank": launch.rank,
            "wrapped": type(wrapped).__name__,
            "trainable": round(float(sum(p.sum() for p in inner[1].parameters())), 4),
            "frozen": round(float(sum(p.sum() for p in inner[0].parameters())), 4),
        }
    ),
    flush=True,
)
procs.close()
