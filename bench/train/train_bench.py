"""Training throughput, side by side: archc's compiled training step against PyTorch CPU eager,
the same network (zoo/cifar/shufflenet_v2_x1_0.ron = torchvision's ShuffleNetV2 1.0x with a
stride-1 conv1 and no max pool), batch size, optimizer and thread count.

Rounds alternate archc and PyTorch so that drift on a shared machine hits both. archc is timed
by its own per-epoch log (`images_per_second`: the compiled steps only, like the PyTorch loop
below, which times forward + backward + optimizer step on tensors already in memory).

    bench/train/run.sh [--batch 64] [--threads 2] [--rounds 3] [--steps 20]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import torch
import torch.nn as nn
import torchvision

ROOT = pathlib.Path(__file__).resolve().parents[2]
NETWORK = ROOT / "zoo/cifar/shufflenet_v2_x1_0.ron"


def torch_model():
    model = torchvision.models.shufflenet_v2_x1_0(num_classes=10)
    # The CIFAR variant: conv1 keeps the resolution, no max pool (as the zoo file says).
    model.conv1[0].stride = (1, 1)
    model.maxpool = nn.Identity()
    return model


def torch_images_per_second(batch, threads, steps):
    torch.set_num_threads(threads)
    model = torch_model().train()
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    plain = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-5}, {"params": plain, "weight_decay": 0.0}],
        lr=0.05, momentum=0.9, nesterov=True,
    )
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(3):  # warm-up
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def archc_images_per_second(batch, threads, steps, archc):
    with tempfile.TemporaryDirectory() as tmp:
        # Two epochs of `steps` steps on synthetic CIFAR-sized data; the second epoch counts.
        spec = f"synthetic:10,3,32,32,{batch * steps}"
        out = subprocess.run(
            [archc, "train", str(NETWORK), "--data", spec, "--epochs", "2", "--batch", str(batch),
             "--threads", str(threads), "--lr", "0.05", "-o", f"{tmp}/w.safetensors"],
            check=True, capture_output=True, text=True,
        ).stdout
    epochs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return epochs[-1]["images_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--archc", default=str(ROOT / "target/release/archc"))
    args = parser.parse_args()
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(archc_images_per_second(args.batch, args.threads, args.steps, args.archc))
        theirs.append(torch_images_per_second(args.batch, args.threads, args.steps))
    a, t = statistics.median(ours), statistics.median(theirs)
    print(f"| network | batch | threads | archc img/s | PyTorch {torch.__version__} img/s | archc / PyTorch |")
    print("|---|---|---|---|---|---|")
    print(f"| cifar shufflenet_v2_x1_0 | {args.batch} | {args.threads} | {a:.0f} | {t:.0f} | {a / t:.2f} |")
    print(f"\nrounds: archc {[round(v) for v in ours]}, PyTorch {[round(v) for v in theirs]}")


if __name__ == "__main__":
    main()
