"""The builds an A/B script compares: each folder's generated library (`archc compile --emit lib
-o DIR`, DIR/lib<name>.so with its entry point <name>_run), loaded into this process."""

import ctypes
import pathlib


def load(name, folders, threads):
    """Each folder's `<name>_run`, its library's pool set to `threads` threads."""
    runs = []
    for folder in folders:
        lib = ctypes.CDLL(f"{folder}/lib{name}.so", mode=ctypes.RTLD_LOCAL)
        run = getattr(lib, f"{name}_run")
        run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        getattr(lib, f"{name}_set_threads")(threads)
        runs.append(run)
    return runs


def element_counts(folder, name):
    """The input's and the output's element counts, from the build's header."""
    counts = {}
    for line in (pathlib.Path(folder) / f"{name}.h").read_text().splitlines():
        for which in ("INPUT", "OUTPUT"):
            key = f"#define {name.upper()}_{which}_ELEMS "
            if line.startswith(key):
                counts[which] = int(line[len(key):].strip().rstrip("uU"))
    return counts["INPUT"], counts["OUTPUT"]


def rotation(count, turn):
    """The indices of `count` builds in the order of turn `turn`: each turn starts one later, so
    that every build is timed in every position alike (the first timed in a round runs slower)."""
    return [(turn + i) % count for i in range(count)]
