"""Paired A/B timing of builds of one network: each build's generated library (`archc compile
--emit lib -o DIR`) is loaded into this one process, and their runs alternate, A B A B ..., so
that the machine's slow and fast phases (these machines are shared) fall on every build alike.
Prints each build's median and min, and the median over runs of its time over the first
build's time in the same round: the paired ratio, steadier than a ratio of medians.

    archc compile NET.ron --emit lib -o /tmp/a        # one build (binary, schedules, ...)
    archc compile NET.ron --emit lib -o /tmp/b        # the other
    python bench/ab/pair.py NAME /tmp/a /tmp/b --threads 1 --runs 300

NAME is the network's name (the library is DIR/libNAME.so, its entry point NAME_run). With
more than one thread, each library's idle workers spin for a while after its run and take
cycles from the next: `--gap` sleeps between runs (0.5 ms outlasts the spin).

A run after another build's starts with that build's data and code in the caches. `--burst N`
runs each build N times in a row instead and times the median of the last N - 2, its own data
and code warm, as the peers' benchmark times every engine: the two can disagree (session 26,
a build with 200 KB of layer-specialized tiles: 1.061 alternating, faster in bursts).
"""

import argparse
import statistics
import time

import numpy as np

import builds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the network's name: DIR/lib<name>.so, <name>_run")
    p.add_argument("dirs", nargs="+", help="library folders; ratios are against the first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=300, help="timed runs of each build")
    p.add_argument("--warmup", type=int, default=20, help="untimed rounds first")
    p.add_argument("--gap", type=float, default=0.0, help="seconds to sleep before each run")
    p.add_argument("--burst", type=int, default=1, help="runs in a row per build and round (3 or more)")
    args = p.parse_args()

    runs = builds.load(args.name, args.dirs, args.threads)
    inputs, outputs_count = builds.element_counts(args.dirs[0], args.name)
    x = np.random.default_rng(0).uniform(-1, 1, inputs).astype(np.float32)
    outputs = [np.empty(outputs_count, np.float32) for _ in runs]

    times = [[] for _ in runs]
    for r in range(args.warmup + args.runs):
        # Each round starts with the next build: a build timed right after another ran about
        # 1.5% faster than the same build timed first (two copies of one library: 0.985).
        for i in builds.rotation(len(runs), r):
            run = runs[i]
            if args.gap:
                time.sleep(args.gap)
            burst = []
            for _ in range(args.burst):
                start = time.perf_counter()
                run(x.ctypes.data, outputs[i].ctypes.data)
                burst.append((time.perf_counter() - start) * 1e3)
            if r >= args.warmup:
                times[i].append(statistics.median(burst[2:]) if args.burst > 2 else burst[-1])
    for folder, t in zip(args.dirs, times):
        paired = statistics.median(a / b for a, b in zip(t, times[0]))
        print(f"{folder}: median {statistics.median(t):.3f} ms, min {min(t):.3f} ms, paired ratio {paired:.3f}")


if __name__ == "__main__":
    main()
