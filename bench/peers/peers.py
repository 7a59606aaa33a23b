#!/usr/bin/env python3
"""archc against the established CPU inference engines, side by side on this machine.

For each model, the same seeded torchvision weights (random BN statistics, so BN does real work)
go to every engine: safetensors for archc, ONNX for onnxruntime and OpenVINO, ncnn (through
pnnx) for ncnn. Each engine's output is checked against PyTorch's; then all engines are timed
interleaved (rounds of a few runs each, engines in turn, so that drift on a shared machine hits
all alike) at each batch size and thread count. archc runs through its generated C library
(`archc compile --emit lib`), called through ctypes, as the peers are called through their
Python bindings. Writes a markdown table of medians and archc / best-peer ratios. Rows on more
than one thread also give the round trip of a cache line between two of the machine's cores,
measured before each round (core_latency.c): these machines' two vCPUs move between nearby and
distant cores, and two-thread times move with them.

Run through bench/peers/run.sh, which sets up the venv.
"""
import argparse
import ctypes
import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from torch_parity import MODELS, build  # noqa: E402  (one definition of the seeded models)

import core_latency  # noqa: E402  (beside this file)

ENGINES = ["archc", "onnxruntime", "openvino", "ncnn", "torch"]

# Seconds of untimed runs (one at least) after each engine's pause, before its timed runs: its
# pool's threads slept through the pause, and their cores idled. One run of ShuffleNet V2 0.5x
# (0.7 ms) left archc's second core cold for the five timed ones (1.09 ms on two threads,
# against 0.71 back to back).
WARM_UP_S = 0.02


def archc_symbol(network_file):
    text = (ROOT / network_file).read_text()
    name = text.split('name: "', 1)[1].split('"', 1)[0]
    return "".join(c if c.isalnum() else "_" for c in name)


class Archc:
    def __init__(self, archc, model, weights, batch, work, tune):
        network = MODELS[model][0]
        out = work / f"archc-{model}-b{batch}"
        # Schedules measured for this run only (not the user's cache), or none with --no-tune.
        schedules = ["--schedules", str(work / ("schedules.json" if tune else "no-schedules.json"))]
        if tune:
            subprocess.run([archc, "tune", str(ROOT / network), "--batch", str(batch)] + schedules, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([archc, "compile", str(ROOT / network), "--weights", str(weights), "--batch", str(batch),
                        "--emit", "lib", "-o", str(out)] + schedules, check=True, stdout=subprocess.DEVNULL)
        symbol = archc_symbol(network)
        self.lib = ctypes.CDLL(str(out / f"lib{symbol}.so"))
        self.run_fn = getattr(self.lib, f"{symbol}_run")
        self.run_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.threads_fn = getattr(self.lib, f"{symbol}_set_threads")
        self.out = None

    def prepare(self, x, threads):
        self.threads_fn(threads)
        self.x = np.ascontiguousarray(x)
        self.out = np.empty((x.shape[0], 1000), dtype=np.float32)

    def __call__(self):
        if self.run_fn(self.x.ctypes.data, self.out.ctypes.data) != 0:
            raise RuntimeError("archc run failed")
        return self.out


class OnnxRuntime:
    def __init__(self, onnx_path):
        self.path = onnx_path

    def prepare(self, x, threads):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.feed = {self.session.get_inputs()[0].name: x}

    def __call__(self):
        return self.session.run(None, self.feed)[0]


class OpenVino:
    def __init__(self, onnx_path):
        self.path = onnx_path

    def prepare(self, x, threads):
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.x = x

    def __call__(self):
        self.request.infer({0: self.x})
        return self.request.get_output_tensor(0).data


class Ncnn:
    def __init__(self, param, binary):
        self.param, self.binary = param, binary

    def prepare(self, x, threads):
        import ncnn
        self.ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_packing_layout = True
        self.net.opt.use_fp16_packed = False
        self.net.opt.use_fp16_storage = False
        self.net.opt.use_fp16_arithmetic = False
        self.net.opt.use_bf16_storage = False
        self.net.load_param(str(self.param))
        self.net.load_model(str(self.binary))
        self.x = x
        self.inputs, self.outputs = self.net.input_names(), self.net.output_names()

    def __call__(self):
        rows = []
        for item in self.x:  # ncnn runs one image at a time
            ex = self.net.create_extractor()
            ex.input(self.inputs[0], self.ncnn.Mat(np.ascontiguousarray(item)).clone())
            _, out = ex.extract(self.outputs[0])
            rows.append(np.array(out).reshape(-1))
        return np.stack(rows)


class Torch:
    def __init__(self, model):
        self.model = model

    def prepare(self, x, threads):
        torch.set_num_threads(threads)
        self.x = torch.from_numpy(x)

    def __call__(self):
        with torch.no_grad():
            return self.model(self.x).numpy()


def export(model_name, model, batch, work):
    """ONNX and ncnn files of `model` for `batch`; ncnn is None when pnnx fails."""
    x = torch.zeros(batch, 3, 224, 224)
    onnx_path = work / f"{model_name}-b{batch}.onnx"
    if not onnx_path.exists():
        torch.onnx.export(model, (x,), str(onnx_path), opset_version=17, dynamo=False)
    ncnn_files = None
    try:
        import pnnx
        # pnnx names its outputs after the .pt file: NAME.ncnn.param and NAME.ncnn.bin.
        stem = work / f"{model_name}_pnnx"
        param, binary = work / f"{stem.name}.ncnn.param", work / f"{stem.name}.ncnn.bin"
        if not param.exists():
            pnnx.export(model, f"{stem}.pt", (torch.zeros(1, 3, 224, 224),))
        ncnn_files = (param, binary) if param.exists() else None
    except Exception as e:  # the peer is optional: report and go on
        print(f"  ncnn export failed for {model_name}: {e}", file=sys.stderr)
    return onnx_path, ncnn_files


def relative_error(a, b):
    return float(np.abs(np.asarray(a).reshape(b.shape) - b).max() / max(np.abs(b).max(), 1e-30))


def time_interleaved(engines, rounds, per_round, probe=None):
    """Each engine's median ms over `rounds` rounds of `per_round` runs, and what `probe` (called
    before each round) returned, its Nones left out."""
    samples = {name: [] for name in engines}
    probed = []
    for _ in range(rounds):
        if probe and (value := probe()) is not None:
            probed.append(value)
        for name, run in engines.items():
            # Let the previous engine's spinning threads go to sleep, and wake this one's pool,
            # so that no engine is timed against another's idle threads.
            time.sleep(0.05)
            warm_until = time.perf_counter() + WARM_UP_S
            run()
            while time.perf_counter() < warm_until:
                run()
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}, probed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archc", default=str(ROOT / "target/release/archc"))
    p.add_argument("--models", nargs="+", default=["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                                                   "shufflenet_v2_x2_0", "mobilenet_v2", "resnet18"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=10, help="rounds of timing, engines interleaved in each")
    p.add_argument("--per-round", type=int, default=5, help="timed runs per engine per round")
    p.add_argument("--repeat", type=int, default=1,
                   help="independent timings of each row: the table gives the median of their medians and "
                        "the range of their ratios, so that a machine's busy minutes show as a spread")
    p.add_argument("--no-tune", dest="tune", action="store_false",
                   help="compile archc with default schedules instead of running `archc tune` first")
    p.add_argument("--work", type=pathlib.Path, default=pathlib.Path("/tmp/archc-peers"))
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "bench/peers/results.md")
    p.add_argument("--rows-to", type=pathlib.Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.rows_to:
        rows = [row for name in args.models for row in measure(args, name)]
        args.rows_to.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    (args.work / "schedules.json").unlink(missing_ok=True)
    # One process per model: what one model's engines leave behind (measured: after ShuffleNet
    # V2 2.0x, every engine ran MobileNet V2 on two threads 1.17-1.35x slower than in a fresh
    # process) must not weigh on the next model's timings.
    rows = []
    for name in args.models:
        rows_file = args.work / f"rows-{name}.jsonl"
        # The parent's own flags, with the last `--models` (the one argparse keeps) naming one.
        child = [sys.executable, __file__, *sys.argv[1:], "--models", name, "--rows-to", str(rows_file)]
        subprocess.run(child, check=True)
        rows += [json.loads(line) for line in rows_file.read_text().splitlines()]
    write_table(rows, args.out, args.repeat)


def measure(args, name):
    """The rows of model `name`: every batch size and thread count, each engine checked, then timed."""
    from safetensors.torch import save_file

    rows = []
    model = build(name, 1000, None, 0)
    weights = args.work / f"{name}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    for batch in args.batches:
        onnx_path, ncnn_files = export(name, model, batch, args.work)
        engines = {"archc": Archc(args.archc, name, weights, batch, args.work, args.tune),
                   "onnxruntime": OnnxRuntime(onnx_path), "openvino": OpenVino(onnx_path), "torch": Torch(model)}
        if ncnn_files:
            engines["ncnn"] = Ncnn(*ncnn_files)
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        for threads in args.threads:
            for engine in engines.values():
                engine.prepare(x, threads)
            errors = {n: relative_error(e(), expected) for n, e in engines.items()}
            if errors["archc"] > 1e-4:
                sys.exit(f"{name} batch {batch}: archc differs from torch by {errors['archc']:.2e}")
            probe = (lambda: core_latency.round_trip(args.work)) if threads > 1 else None
            timed = [time_interleaved(engines, args.rounds, args.per_round, probe) for _ in range(args.repeat)]
            repeats = [medians for medians, _ in timed]
            ratios = [r["archc"] / r[best_peer(r)] for r in repeats]
            medians = {n: statistics.median(r[n] for r in repeats) for n in engines}
            best = best_peer(medians)
            row = {"model": name, "batch": batch, "threads": threads, "medians_ms": medians,
                   "errors": errors, "best_peer": best, "ratio": medians["archc"] / medians[best],
                   "repeat_ratios": ratios, "core_round_trip_ns": [ns for _, probed in timed for ns in probed]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def best_peer(medians):
    """The fastest, in `medians`, of the peers the ratio counts (onnxruntime, OpenVINO, ncnn)."""
    peers = {n: m for n, m in medians.items() if n not in ("archc", "torch")}
    return min(peers, key=peers.get)


def write_table(rows, path, repeat):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "SSE"
    lines = [f"Machine: {cpu} ({isa}), {len([l for l in open('/proc/cpuinfo') if l.startswith('processor')])} cores; "
             f"median ms over interleaved runs; ratio = archc / fastest peer (onnxruntime, OpenVINO, ncnn)"
             + (f"; in brackets, the range of the ratios of {repeat} repeats" if repeat > 1 else "")
             + "; core round trip = median ns [range] of a cache line between two cores, before each round "
               "(about 100 near, 500 far).", "",
             "| model | batch | threads | " + " | ".join(ENGINES) + " | ratio | core round trip |",
             "|---|---|---|" + "---|" * len(ENGINES) + "---|---|"]
    for r in rows:
        cells = [f"{r['medians_ms'][e]:.2f}" if e in r["medians_ms"] else "–" for e in ENGINES]
        spread = f" [{min(r['repeat_ratios']):.2f}-{max(r['repeat_ratios']):.2f}]" if repeat > 1 else ""
        trips = r.get("core_round_trip_ns") or []
        trip = f"{statistics.median(trips):.0f} [{min(trips):.0f}-{max(trips):.0f}]" if trips else "–"
        lines.append(f"| {r['model']} | {r['batch']} | {r['threads']} | " + " | ".join(cells)
                     + f" | **{r['ratio']:.2f}**{spread} | {trip} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
