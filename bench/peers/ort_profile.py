#!/usr/bin/env python3
"""onnxruntime's own per-node profile of an ONNX model, to set beside `archc bench --profile`:
which layers the fastest peer runs faster than archc, and what it spends outside convolutions.

    python bench/peers/ort_profile.py /tmp/archc-peers/mobilenet_v2-b1.onnx --threads 1

(bench/peers/run.sh leaves each model's ONNX file in its work folder, /tmp/archc-peers by
default.) Runs the model `--runs` times with onnxruntime's profiler on, then prints each node's
median kernel time over the runs after `--warmup`, in graph order, and the sums by op type.
Node names are onnxruntime's after its graph optimizations: a convolution fused with its
activation is named after the activation.
"""
import argparse
import collections
import json
import os
import statistics

import numpy as np
import onnxruntime as ort


def arguments(doc):
    """The command line of a peer's profile script (`doc` its help): the model, threads, runs
    and warm-up runs."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an ONNX file with one input")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50, help="runs left out of the medians")
    return p.parse_args()


def main():
    args = arguments(__doc__)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    input_meta = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in input_meta.shape]
    feed = {input_meta.name: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}
    for _ in range(args.runs):
        session.run(None, feed)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)

    times = collections.defaultdict(list)
    kinds = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            times[name].append(e["dur"])
            kinds[name] = e.get("args", {}).get("op_name", "?")
    medians = {name: statistics.median(d[args.warmup:] or d) / 1000 for name, d in times.items()}
    report(medians, kinds, 24)


def report(medians, kinds, width):
    """Prints each node's median ms with its op (`kinds`, `width` characters), in order, then
    the sums by op and the total."""
    by_kind = collections.Counter()
    print(f"{'node':72s} {'op':{width}s} {'ms':>8s}")
    for name, ms in medians.items():
        print(f"{name[-72:]:72s} {kinds[name]:{width}s} {ms:8.4f}")
        by_kind[kinds[name]] += ms
    print()
    for kind, ms in by_kind.most_common():
        print(f"{kind:{width}s} {ms:8.4f} ms")
    print(f"{'total':{width}s} {sum(medians.values()):8.4f} ms")


if __name__ == "__main__":
    main()
