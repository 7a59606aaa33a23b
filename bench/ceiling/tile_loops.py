#!/usr/bin/env python3
"""The most a GEMM micro-tile's inner loop can do on this CPU, shape by shape.

    bench/ceiling/tile_loops.py [--shapes 14x2 9x3 6x4 ...] [--steps N]

For each tile of R output channels by V vectors of 16 pixels (AVX-512), it times a loop
of nothing but one step of k as archc's tile emits it: V vector loads of inputs, R weight
broadcasts, R * V multiply-adds into R * V accumulators, all from L1. Where the accumulators,
inputs and one broadcast outgrow the 32 vector registers, the weights are broadcast from
memory by each multiply-add instead. A loop of register-only multiply-adds comes first: the
FMA pipes' own peak. An archc step's GFLOP/s (`archc bench --profile`, `bench/ab/step.sh`)
read against these shows what its loads, tails, setup and epilogue cost, apart from what the
machine allows. Needs a C compiler that takes AT&T AVX-512 assembly (gcc or clang).
"""

import argparse
import os
import subprocess
import sys
import tempfile

DEFAULT_SHAPES = ["16x1", "14x2", "9x3", "6x4", "5x5", "4x6"]


def loop_body(rows, vectors):
    """The assembly of one step of k of an R x V tile (inputs in zmm0.., accumulators after)."""
    lines = [f" vmovups {1024 + 64 * v}(%%rax),%%zmm{v}" for v in range(vectors)]
    in_registers = rows * vectors + vectors + 1 <= 32
    for r in range(rows):
        accumulators = [vectors + r * vectors + v for v in range(vectors)]
        if in_registers:
            lines.append(f" vbroadcastss {4 * r}(%%rax),%%zmm31")
            lines += [f" vfmadd231ps %%zmm{v},%%zmm31,%%zmm{a}" for v, a in enumerate(accumulators)]
        else:
            lines += [
                f" vfmadd231ps {4 * r}(%%rax)%{{1to16%}},%%zmm{v},%%zmm{a}"
                for v, a in enumerate(accumulators)
            ]
    return lines, in_registers


def register_only_body():
    """28 independent multiply-adds on registers: the pipes' peak."""
    return [f" vfmadd231ps %%zmm0,%%zmm31,%%zmm{a}" for a in range(2, 30)]


def program(cases, steps):
    timed = []
    for name, lines, fmas in cases:
        body = "\\n".join(lines)
        timed.append(f"""
  {{
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {{
      double t0 = now();
      __asm__ volatile("mov %0,%%rcx\\nmov %1,%%rax\\n1:\\n{body}\\ndec %%rcx\\njnz 1b\\n"
                       :: "r"(steps), "r"(buf) : "rcx", "rax", "memory");
      double t = now() - t0;
      if (t < best) best = t;
    }}
    printf("%-28s %7.1f GFLOP/s  %.3f ns per multiply-add\\n", "{name}",
           {fmas} * 32.0 * steps / best / 1e9, best * 1e9 / ((double)steps * {fmas}));
  }}""")
    return f"""#include <stdio.h>
#include <time.h>
static double now(void) {{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }}
static float buf[4096] __attribute__((aligned(64)));
int main(void) {{
  for (int i = 0; i < 4096; i++) buf[i] = 0.001f * i;
  long steps = {steps};
  {"".join(timed)}
  return 0;
}}
"""


def parse_shape(text):
    try:
        rows, vectors = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a tile is ROWSxVECTORS, like 14x2")
    if rows < 1 or vectors < 1 or rows * vectors + vectors > 32:
        raise argparse.ArgumentTypeError(f"{text!r}: its accumulators and inputs need more than 32 registers")
    return rows, vectors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=[parse_shape(s) for s in DEFAULT_SHAPES])
    parser.add_argument("--steps", type=int, default=20_000_000, help="loop iterations per timing")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    cases = [("registers only (28 FMAs)", register_only_body(), 28)]
    for rows, vectors in args.shapes:
        lines, in_registers = loop_body(rows, vectors)
        how = "broadcast" if in_registers else "memory broadcasts"
        cases.append((f"{rows}x{vectors} tile, {how}", lines, rows * vectors))
    with tempfile.TemporaryDirectory() as work:
        source, binary = os.path.join(work, "ceiling.c"), os.path.join(work, "ceiling")
        with open(source, "w") as out:
            out.write(program(cases, args.steps))
        compiler = os.environ.get("CC", "cc")
        built = subprocess.run([compiler, "-O2", "-o", binary, source], capture_output=True, text=True)
        if built.returncode != 0:
            sys.exit(f"tile_loops.py: {compiler} failed (an x86-64 compiler with AVX-512 is needed):\n{built.stderr}")
        run = subprocess.run([binary], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"tile_loops.py: the probe failed (exit {run.returncode}; no AVX-512 here?)\n{run.stderr}")
        print(run.stdout, end="")


if __name__ == "__main__":
    main()
