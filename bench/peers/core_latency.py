"""The round trip of a cache line between two of this machine's cores, by core_latency.c: the
probe that bench/peers/peers.py records beside two-thread rows and bench/ab/phases.py splits
its segments by."""

import pathlib
import subprocess


def round_trip(work):
    """The round trip in ns between the first two CPUs this process may use, by core_latency.c
    (compiled into folder `work` on first use); None with one CPU or no C compiler."""
    probe = pathlib.Path(work) / "core_latency"
    if not probe.exists():
        source = pathlib.Path(__file__).with_name("core_latency.c")
        built = subprocess.run(["cc", "-O2", "-pthread", str(source), "-o", str(probe)], capture_output=True)
        if built.returncode != 0:
            return None
    measured = subprocess.run([str(probe)], capture_output=True, text=True)
    return float(measured.stdout) if measured.returncode == 0 else None
