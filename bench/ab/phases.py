"""Two-thread A/B of builds of one network, split by where the machine's two cores sit. These
machines' two vCPUs move between nearby cores (a cache line's round trip from one to the other
about 100-200 ns) and distant ones (450-750 ns), and two-thread times move with them (MobileNet
V2: 3.95-4.15 ms near, 5.3-5.5 ms far). Each segment probes the round trip
(bench/peers/core_latency.c), then times each build for a few runs in turn; the summary gives
each build's median and its paired ratio to the first build, over the segments after a near
probe and after a far one.

    archc compile NET.ron --emit lib -o /tmp/a        # one build
    archc compile NET.ron --emit lib -o /tmp/b        # the other
    python bench/ab/phases.py NAME /tmp/a /tmp/b --segments 100

NAME is the network's name (the library is DIR/libNAME.so, its entry point NAME_run).
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

import builds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "peers"))
import core_latency  # noqa: E402  (bench/peers/core_latency.py)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the network's name: DIR/lib<name>.so, <name>_run")
    p.add_argument("dirs", nargs="+", help="library folders; ratios are against the first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segments", type=int, default=100)
    p.add_argument("--runs", type=int, default=30, help="timed runs of each build per segment")
    p.add_argument("--far", type=float, default=200.0, help="round trip (ns) from which a segment counts as far")
    args = p.parse_args()

    work = tempfile.mkdtemp()
    runs = builds.load(args.name, args.dirs, args.threads)
    inputs, outputs = builds.element_counts(args.dirs[0], args.name)
    x = np.random.default_rng(0).uniform(-1, 1, inputs).astype(np.float32)
    out = np.empty(outputs, np.float32)

    segments = []  # (round trip ns, [median ms of each build])
    for _ in range(args.segments):
        ns = core_latency.round_trip(work)
        if ns is None:
            raise SystemExit("core_latency: fewer than two CPUs, or no C compiler")
        medians = [0.0] * len(runs)
        # Each segment starts with the next build (see pair.py): two copies of one library
        # timed in a fixed order gave 0.984 / 0.990.
        for i in builds.rotation(len(runs), len(segments)):
            run = runs[i]
            run(x.ctypes.data, out.ctypes.data)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                run(x.ctypes.data, out.ctypes.data)
                times.append((time.perf_counter() - start) * 1e3)
            medians[i] = statistics.median(times)
        segments.append((ns, medians))
        print(f"{segments[-1][0]:6.0f} ns  " + "  ".join(f"{m:.3f}" for m in medians), flush=True)
    for label, near in (("near", True), ("far", False)):
        chosen = [m for ns, m in segments if (ns < args.far) == near]
        if not chosen:
            continue
        print(f"{label} ({len(chosen)} segments):")
        for i, folder in enumerate(args.dirs):
            median = statistics.median(m[i] for m in chosen)
            paired = statistics.median(m[i] / m[0] for m in chosen)
            print(f"  {folder}: median {median:.3f} ms, paired ratio {paired:.3f}")


if __name__ == "__main__":
    main()
