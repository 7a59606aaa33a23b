#!/usr/bin/env python3
"""PyTorch's own speed on an NVIDIA GPU for the zoo's torchvision models: eager, eager replayed as
one CUDA graph (launched as archc launches its own), and torch.compile, at batch 1 and 64, fp32,
median of timed runs with CUDA events. This is the bar archc's GPU
backend is measured against (scripts/gpu-check.sh); it needs only python3 with torch and
torchvision, so it runs on a machine with a GPU and no network.

    python3 bench/gpu/torch_baseline.py [--models ...] [--batches 1 64] [--json out.json]
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torchvision


def median_ms(fn, x, warmup, runs):
    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graphed(model, x):
    """`model` on `x` captured once as a CUDA graph, so that timing it leaves Python's launch
    overhead out: the comparison with archc's own graph replay. Warmed up on a side stream first,
    as capture requires (cuDNN picks its algorithms there)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(x)
    return lambda _: graph.replay()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                                                   "shufflenet_v2_x2_0", "mobilenet_v2", "resnet18"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, fp32 (TF32 off)", flush=True)
    print("| model | batch | eager ms | eager CUDA graph ms | torch.compile ms |\n|---|---|---|---|---|", flush=True)
    rows = []
    for name in args.models:
        model = getattr(torchvision.models, name)(weights=None).eval().cuda()
        compiled = None
        if not args.no_compile:
            try:
                compiled = torch.compile(model)
            except Exception as e:  # report and go on: the eager column still stands
                print(f"torch.compile unavailable: {e}", file=sys.stderr)
        for batch in args.batches:
            x = torch.randn(batch, 3, 224, 224, device="cuda")
            with torch.no_grad():
                eager = median_ms(model, x, 5, args.runs)
                graph = median_ms(graphed(model, x), x, 5, args.runs)
                fast = None
                if compiled is not None:
                    try:
                        fast = median_ms(compiled, x, 3, args.runs)
                    except Exception as e:
                        print(f"torch.compile failed for {name}: {type(e).__name__}: {e}"[:300], file=sys.stderr)
            rows.append({"model": name, "batch": batch, "eager_ms": eager, "graph_ms": graph, "compile_ms": fast})
            fast_text = f"{fast:.3f}" if fast is not None else "–"
            print(f"| {name} | {batch} | {eager:.3f} | {graph:.3f} | {fast_text} |", flush=True)
            if args.json:  # after every row, whole, so that a run stopped by a time limit keeps its rows
                with open(args.json + ".partial", "w") as f:
                    json.dump(rows, f, indent=1)
                os.replace(args.json + ".partial", args.json)


if __name__ == "__main__":
    main()
