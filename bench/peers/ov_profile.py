#!/usr/bin/env python3
"""OpenVINO's own per-node profile of an ONNX model, to set beside `archc bench --profile`:
which layers the peer runs faster than archc, and how much of its run lies outside its nodes.

    python bench/peers/ov_profile.py /tmp/archc-peers/mobilenet_v2-b1.onnx --threads 2

(bench/peers/run.sh leaves each model's ONNX file in its work folder, /tmp/archc-peers by
default.) Compiles the model for the CPU as bench/peers does (one stream, f32), runs it `--runs`
times with performance counters on, and prints each executed node's median time over the runs
after `--warmup`, in execution order, the sums by op type, and the median wall time of a run:
the gap between the sum and the wall is the engine's time between its nodes.
"""
import collections
import statistics
import time

import numpy as np
import openvino as ov

from ort_profile import arguments, report


def main():
    args = arguments(__doc__)

    config = {
        "PERF_COUNT": "YES",
        "INFERENCE_NUM_THREADS": args.threads,
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32",
    }
    compiled = ov.Core().compile_model(args.model, "CPU", config)
    request = compiled.create_infer_request()
    shape = [d.get_length() if d.is_static else 1 for d in compiled.input(0).get_partial_shape()]
    feed = {0: np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}
    times = collections.defaultdict(list)
    kinds = {}
    walls = []
    for run in range(args.warmup + args.runs):
        start = time.perf_counter()
        request.infer(feed)
        wall = time.perf_counter() - start
        if run < args.warmup:
            continue
        walls.append(wall * 1000)
        for info in request.profiling_info:
            if info.status == info.Status.EXECUTED:
                times[info.node_name].append(info.real_time.total_seconds() * 1000)
                kinds[info.node_name] = f"{info.node_type} ({info.exec_type})"
    report({name: statistics.median(d) for name, d in times.items()}, kinds, 44)
    print(f"{'wall':44s} {statistics.median(walls):8.4f} ms")


if __name__ == "__main__":
    main()
