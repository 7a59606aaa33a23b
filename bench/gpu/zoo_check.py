#!/usr/bin/env python3
"""Runs every network of the zoo on an NVIDIA GPU through `archc run --device cuda` and checks its
output against archc's reference interpreter (`ir::eval`, `--backend interp`), with the same
seeded weights and a seeded input, within a relative tolerance. It needs an `archc` that starts
on the GPU machine (scripts/gpu-check.sh carries one, with its libraries), python3 and numpy.

    python3 bench/gpu/zoo_check.py --archc gpu-bundle/archc [--jobs 16] [--json out.json]

Networks run in parallel, each in its own work folder; the search spaces under zoo/spaces are
not networks and are skipped. Exit status 1 when a network fails or differs.
"""
import argparse
import concurrent.futures
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def zoo_networks():
    """Every network file of the zoo, as paths relative to the repository root."""
    return sorted(p.relative_to(ROOT) for p in (ROOT / "zoo").rglob("*.ron")
                  if "spaces" not in p.relative_to(ROOT / "zoo").parts)


def check(archc, network, work, tolerance, backend):
    """One network: its input shape from `archc check`, then the interpreter and the GPU on the
    same seeded input. Returns a result row; failures are rows too, with the reason."""
    start = time.monotonic()
    stem = work / str(network).replace("/", "_").removesuffix(".ron")
    row = {"network": str(network), "pass": False}
    try:
        layers = json.loads(run(archc, "check", network, "--json"))["layers"]
        shape = next(layer["shape"] for layer in layers if layer["op"] == "input")
        np.save(f"{stem}.input.npy", np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        for which in ("interp", backend):
            run(archc, "run", network, "--backend", which, "--batch", str(shape[0]),
                "--input", f"{stem}.input.npy", "--output", f"{stem}.{which}.npy")
        expected, got = np.load(f"{stem}.interp.npy"), np.load(f"{stem}.{backend}.npy")
        if expected.shape != got.shape:
            row["error"] = f"shape {got.shape} from {backend}, {expected.shape} from the interpreter"
        else:
            err = float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-30))
            row["max_relative_error"] = err
            row["pass"] = bool(np.isfinite(got).all()) and err <= tolerance
        row["input"] = shape
    except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as e:
        row["error"] = str(e)[-400:]
    row["seconds"] = round(time.monotonic() - start, 1)
    return row


def run(archc, *args):
    """`archc ARGS`'s standard output; its standard error in the exception when it fails."""
    result = subprocess.run([archc, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"archc {args[0]} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archc", default=str(ROOT / "target/release/archc"))
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--backend", default="cuda", help="the backend checked: cuda, or cpu for a dry run without a GPU")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()
    networks = zoo_networks()
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda n: check(args.archc, n, pathlib.Path(tmp), args.tolerance, args.backend), networks))
    print("| network | input | max relative error | check | s |\n|---|---|---|---|---|")
    for r in rows:
        err = f"{r['max_relative_error']:.1e}" if "max_relative_error" in r else "–"
        verdict = "pass" if r["pass"] else "FAILED " + r.get("error", "").strip().replace("\n", " ")[-200:]
        shape = "x".join(map(str, r.get("input", [])))
        print(f"| {r['network']} | {shape} | {err} | {verdict} | {r['seconds']} |")
    failed = sum(not r["pass"] for r in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} zoo networks match the interpreter within {args.tolerance:g} "
          f"on backend {args.backend}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
