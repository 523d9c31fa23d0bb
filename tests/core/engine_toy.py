"""A toy task for the engine's tests: least squares with dropout on a fixed data set, some items unreadable.

Run as a script (``python -m torch.distributed.run --nproc_per_node 2 tests/core/engine_toy.py OUT BATCH``) it
trains with ``BATCH`` items per process; imported, :func:`run` trains in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from deepnotes.core.distributed import DistInfo, shard
from deepnotes.core.engine import Schedule, StepOutput, Trainer, TrainTask, distributed
from deepnotes.core.seed import seed_everything

N, DIM = 48, 5
UNREADABLE = {3, 4, 5, 17, *range(20, 28)}  # items whose "file" cannot be read


class Toy(TrainTask):
    label = "toy"

    def __init__(self, batch_size: int, info: DistInfo, epochs: int = 3, lr: float = 0.05,
                 period: int | None = None, placeholder: bool = True, seed: int = 0,
                 dropout: float = 0.3) -> None:
        seed_everything(seed)
        self.info, self.batch_size, self.seed, self.use_placeholder = info, batch_size, seed, placeholder
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(N, DIM, generator=g), torch.randn(N, 1, generator=g)
        self.model = nn.Sequential(nn.Linear(DIM, 16), nn.Dropout(dropout), nn.Linear(16, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: 1.0 / (1 + 0.1 * s))
        per_epoch = N // (batch_size * info.world_size)
        self.schedule = Schedule(epochs * per_epoch, period or per_epoch, per_epoch)
        self.identity, self.config = {"model": "toy"}, {"batch_size": batch_size, "lr": lr}
        self.resume_fields = {"batch_size": batch_size, "lr": lr, "seed": seed}

    def batches(self, period: int, first_step: int):
        g = self.batch_size * self.info.world_size
        for step in range(first_step, self.schedule.total_steps):
            epoch = step // self.schedule.steps_per_epoch
            order = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
            at = (step % self.schedule.steps_per_epoch) * g
            idx = shard(order[at:at + g].tolist(), self.info)
            yield {"ok": [i for i in idx if i not in UNREADABLE], "bad": [i for i in idx if i in UNREADABLE]}

    def items(self, batch) -> int:
        return len(batch["ok"])

    def skipped(self, batch) -> list[str]:
        return [f"item{i}" for i in batch["bad"]]

    def placeholder(self):
        return {"ok": [0], "bad": []} if self.use_placeholder else None

    def loss(self, net, batch) -> StepOutput:
        i = torch.tensor(batch["ok"])
        err = (net(self.x[i]) - self.y[i]).pow(2)
        return StepOutput(err.mean(), len(i), {"abs": float(err.detach().sqrt().mean())})

    def validate(self, epoch: int) -> dict:
        with torch.no_grad():
            self.model.eval()
            return {"val_mse": float((self.model(self.x) - self.y).pow(2).mean())}


def run(out: Path, batch_size: int, **kw) -> tuple[Trainer, list[dict]]:
    with distributed(torch.device("cpu")) as (info, dev):
        resume = kw.pop("resume", False)
        limit = kw.pop("time_limit_s", None)
        trainer = Trainer(Toy(batch_size, info, **kw), out, info, dev, resume=resume, time_limit_s=limit)
        return trainer, trainer.fit()


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), dropout=float(sys.argv[3]))
