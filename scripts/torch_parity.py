#!/usr/bin/env python3
"""Writes a parity fixture: a torchvision model with seeded random weights, an input, and torch's
output, so that archc's reference interpreter (and later its compiled code) can be checked against
an implementation nobody here wrote.

Run from a venv with torch, torchvision, safetensors and numpy (`pip install torch torchvision
safetensors numpy`):

    scripts/torch_parity.py --model shufflenet_v2_x0_5 --resolution 64 --batch 2 --classes 10 \
        --out ir/tests/parity
    scripts/torch_parity.py --model shufflenet_v2_x1_0 --out /tmp/full --archc target/release/archc
    scripts/torch_parity.py --model resnet18 --out /tmp/gpu --archc archc --backend cuda   # on a GPU

Files written to OUT: MODEL.safetensors (the state_dict, as `safetensors.torch.save_file` writes
it), MODEL.input.npy, MODEL.output.npy, and MODEL.json (what archc needs to rebuild the same
network). With --archc, the script also runs `archc run` on the fixture (with --backend: the
interpreter, native CPU code, or the GPU, where torch computes too) and prints the relative error
max|archc - torch| / max|torch|; exit status 1 above 1e-4.
"""
import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

# The zoo file mirroring each torchvision model, and how torchvision's width is passed.
MODELS = {
    "shufflenet_v2_x0_5": ("zoo/shufflenet_v2_x0_5.ron", None),
    "shufflenet_v2_x1_0": ("zoo/shufflenet_v2_x1_0.ron", None),
    "shufflenet_v2_x1_5": ("zoo/shufflenet_v2_x1_5.ron", None),
    "shufflenet_v2_x2_0": ("zoo/shufflenet_v2_x2_0.ron", None),
    "mobilenet_v2": ("zoo/mobilenet_v2.ron", "width_mult"),
    "resnet18": ("zoo/resnet18.ron", None),
    "resnet50": ("zoo/resnet50.ron", None),
}


def build(name, classes, width, seed):
    torch.manual_seed(seed)
    kwargs = {"weights": None, "num_classes": classes}
    if width is not None:
        kwargs[MODELS[name][1]] = width
    model = getattr(torchvision.models, name)(**kwargs).eval()
    # torchvision initializes BN as the identity; random statistics make BN do real work.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--width", type=float, help="width multiplier (mobilenet_v2 only)")
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32",
                   help="dtype of the saved weights; with f16 the model computes with the f16-rounded weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--archc", help="path to an archc binary: run it on the fixture and report the error")
    p.add_argument("--backend", choices=["interp", "cpu", "cuda"], default="interp",
                   help="archc's backend with --archc; cuda also computes torch's output on the GPU (TF32 off)")
    args = p.parse_args()
    if args.width is not None and MODELS[args.model][1] is None:
        p.error(f"--width does not apply to {args.model}")

    torch.set_num_threads(1)
    model = build(args.model, args.classes, args.width, args.seed)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if args.dtype == "f16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})

    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen)
    with torch.no_grad():
        if args.backend == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            y = model.cuda()(x.cuda()).cpu()
        else:
            y = model(x)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.model
    save_file(state, f"{stem}.safetensors")
    np.save(f"{stem}.input.npy", x.numpy().astype(np.float32))
    np.save(f"{stem}.output.npy", y.numpy().astype(np.float32))
    overrides = {"resolution": args.resolution, "classes": args.classes}
    if args.width is not None:
        overrides["width"] = args.width
    network = MODELS[args.model][0]
    stem.with_suffix(".json").write_text(json.dumps({"network": network, "overrides": overrides}, indent=2) + "\n")
    print(f"wrote {stem}.{{safetensors,input.npy,output.npy,json}}; output {tuple(y.shape)}")

    if args.archc:
        out = f"{stem}.archc.npy"
        cmd = [args.archc, "run", network, "--weights", f"{stem}.safetensors",
               "--input", f"{stem}.input.npy", "--output", out, "--backend", args.backend, "--batch", str(args.batch)]
        for k, v in overrides.items():
            cmd += ["--set", f"{k}={v}"]
        subprocess.run(cmd, check=True)
        ours = np.load(out)
        ref = y.numpy()
        err = np.abs(ours - ref).max() / np.abs(ref).max()
        print(f"{args.model}: archc ({args.backend}) vs torch: max|diff| = {np.abs(ours - ref).max():.3e}, "
              f"relative error = {err:.3e}")
        return 0 if err < 1e-4 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
