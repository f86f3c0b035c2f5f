"""Train an exported Conv3DT Studio model with DistributedDataParallel (plain PyTorch).

    torchrun --nproc_per_node=2 train_ddp.py --x x.npy --y y.npy --epochs 3 --batch-size 4 \\
        --out trained.safetensors

``x.npy`` holds the samples, (samples, time, *sample) as the graph's Input; ``y.npy`` the targets,
shaped as the prediction. Both are memory-mapped: each process reads only the samples that its
DistributedSampler hands it, so the data may be far larger than memory (or than the editor
handles). The loss is the mean squared error, the optimizer Adam. Rank 0 writes the trained
weights to ``--out`` with the architecture in the safetensors header; bring them back into the
studio with ``conv3dt-studio import trained.safetensors -o trained.json``.

The gloo backend runs on CPUs (``--backend nccl`` for one GPU per process). Written beside
model.py by the export, which it imports from its own folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import load_model, save_weights  # type: ignore[import-not-found]  # noqa: E402


class MemmapPairs(Dataset):
    """(sample, target) pairs read from two memory-mapped .npy files, as float32."""

    def __init__(self, x_path: str, y_path: str) -> None:
        self.x = np.load(x_path, mmap_mode="r", allow_pickle=False)
        self.y = np.load(y_path, mmap_mode="r", allow_pickle=False)
        if len(self.x) != len(self.y):
            raise SystemExit(f"--x has {len(self.x)} samples but --y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.array(self.x[i], dtype=np.float32))
        return x, torch.from_numpy(np.array(self.y[i], dtype=np.float32))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--x", required=True, help="samples, .npy (memory-mapped)")
    p.add_argument("--y", required=True, help="targets, .npy (memory-mapped)")
    p.add_argument("--weights", default=None, help="start from these (default: the export's)")
    p.add_argument("--out", default="trained.safetensors", help="trained weights (rank 0)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=4, help="per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="gloo", choices=("gloo", "nccl"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    dist.init_process_group(args.backend)
    try:
        train(args)  # its DDP wrapper and pending communication are gone when it returns
        dist.barrier()
    finally:
        dist.destroy_process_group()


def train(args: argparse.Namespace) -> None:
    """Train this process's share; rank 0 saves the weights."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)
    gpu = args.backend == "nccl"
    device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}" if gpu else "cpu")
    model = load_model(args.weights).to(device).train()
    ddp = DistributedDataParallel(model, device_ids=[device.index] if gpu else None)
    data = MemmapPairs(args.x, args.y)
    sampler: DistributedSampler = DistributedSampler(
        data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed
    )
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    step = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.mse_loss(ddp(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            step += 1
            if rank == 0:
                print(f"epoch {epoch + 1} step {step} loss {loss.item():.6g}", flush=True)
            if step == args.max_steps:
                break
        if step == args.max_steps:
            break
    if rank == 0:
        save_weights(model, args.out)
        print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
    # Everything is saved and the process group destroyed. Leave without the interpreter's and
    # C++'s teardown: with PyTorch 2.13's gloo a thread still joinable there aborted about one
    # run in ten on a loaded machine ("terminate called without an active exception").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
