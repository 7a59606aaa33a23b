#!/usr/bin/env bash
# Checks and times archc's PTX backend on an NVIDIA GPU, beside PyTorch, in two phases
# (bench/gpu/README.md says more):
#   scripts/gpu-check.sh prepare               here, with Rust and LLVM: builds, compiles the
#                                              networks and their expected outputs into gpu-bundle/
#   scripts/gpu-check.sh device [--no-compile] on the GPU machine, from the repository root, with
#                                              gpu-bundle/ carried: checks, times, prints one table
set -euo pipefail
cd "$(dirname "$0")/.."

NETS=(shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 mobilenet_v2)
# Checked for correctness at batch 1, so their weights travel; the others' stay behind, since
# the benchmark times zeros, to keep what is carried under the device tool's 64 MiB.
CHECKED=(shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 mobilenet_v2)
BUNDLE=gpu-bundle
# The bundle and the tracked tree travel together; leave room under 64 MiB.
LIMIT_MIB=60
# The device phase's own deadline, in seconds: the brief is under 8 minutes, and a device
# command may run 10 at most.
BUDGET_S=${GPU_CHECK_SECONDS:-450}

prepare() {
    cargo build --release -p cuda --bin archc-gpu
    cargo build --release
    local archc=target/release/archc
    rm -rf "$BUNDLE"
    mkdir -p "$BUNDLE"
    for net in "${NETS[@]}"; do
        for batch in 1 64; do
            echo "compiling $net at batch $batch"
            "$archc" compile "zoo/$net.ron" --target cuda --arch sm_90 --batch "$batch" --emit ptx \
                -o "$BUNDLE/${net}_b$batch.ptx"
        done
    done
    for net in "${CHECKED[@]}"; do
        echo "expected output of $net (reference interpreter)"
        write_input "$BUNDLE/${net}_b1.launch.json" "$BUNDLE/${net}_b1.input.npy"
        "$archc" run "zoo/$net.ron" --backend interp --input "$BUNDLE/${net}_b1.input.npy" \
            --output "$BUNDLE/${net}_b1.expected.npy"
    done
    for weights in "$BUNDLE"/*.weights; do
        local keep=0
        for net in "${CHECKED[@]}"; do
            if [[ $weights == "$BUNDLE/${net}_b1.weights" ]]; then keep=1; fi
        done
        if ((!keep)); then rm "$weights"; fi
    done
    cp target/release/archc-gpu "$BUNDLE/"
    local bundle tree
    bundle=$(du -sb "$BUNDLE" | cut -f1)
    tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
    echo "$BUNDLE: $((bundle / 1024 / 1024)) MiB; with the tracked tree: $(((bundle + tree) / 1024 / 1024)) MiB (limit 64)"
    if ((bundle + tree > LIMIT_MIB * 1024 * 1024)); then
        echo "too large to carry to the device: keep fewer weights" >&2
        exit 1
    fi
}

# A seeded standard-normal float32 .npy of the plan's input shape (plain Python: no numpy here).
write_input() {
    python3 - "$1" "$2" <<'EOF'
import json, random, struct, sys
plan, out = sys.argv[1:3]
inputs = json.load(open(plan))["inputs"]
if len(inputs) != 1:
    sys.exit(f"{plan}: {len(inputs)} inputs; gpu-check writes one")
shape = inputs[0]
count = 1
for d in shape:
    count *= d
rng = random.Random(0)
data = struct.pack(f"<{count}f", *(rng.gauss(0.0, 1.0) for _ in range(count)))
dims = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % dims
header += " " * (-(10 + len(header) + 1) % 64) + "\n"  # the data starts 64-byte aligned
with open(out, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
EOF
}

device() {
    local compile=1
    [[ ${1-} == --no-compile ]] && compile=0
    local start=$SECONDS work gpu=$BUNDLE/archc-gpu failed=0
    # Seconds left of the budget, less what the table needs; at least 1, since `timeout 0`
    # would mean no limit at all.
    left() {
        local s=$((BUDGET_S - (SECONDS - start) - 10))
        echo $((s > 1 ? s : 1))
    }
    work=$(mktemp -d)
    [[ -x $gpu ]] || chmod +x "$gpu"
    nvidia-smi -L
    for net in "${CHECKED[@]}"; do
        [[ -f $BUNDLE/${net}_b1.weights ]] || continue
        timeout "$(left)" "$gpu" check "$BUNDLE/${net}_b1.ptx" --input "$BUNDLE/${net}_b1.input.npy" \
            --expected "$BUNDLE/${net}_b1.expected.npy" --json >"$work/check_$net.json" || failed=1
        cat "$work/check_$net.json"
    done
    for net in "${NETS[@]}"; do
        for batch in 1 64; do
            timeout "$(left)" "$gpu" bench "$BUNDLE/${net}_b$batch.ptx" --json \
                >"$work/bench_${net}_b$batch.json" || failed=1
            cat "$work/bench_${net}_b$batch.json"
        done
    done
    timeout "$(left)" python3 bench/gpu/torch_baseline.py --models "${NETS[@]}" --batches 1 64 --no-compile \
        --json "$work/eager.json" || echo "torch eager stopped early; the rows it finished are kept"
    # torch.compile takes tens of seconds per model to warm up: batch 1 only, in what time is left.
    if ((compile && $(left) > 60)); then
        timeout -k 10 "$(left)" python3 bench/gpu/torch_baseline.py --models "${NETS[@]}" --batches 1 \
            --json "$work/compile.json" || echo "torch.compile stopped early; the rows it finished are kept"
    fi
    table "$work" | tee "$work/gpu-check.md"
    if [[ -n ${OUT-} ]]; then
        cp "$work/gpu-check.md" "$OUT/"
    fi
    echo "device phase: $((SECONDS - start)) s"
    exit "$failed"
}

# The markdown table from the results in folder $1.
table() {
    python3 - "$1" "${NETS[@]}" <<'EOF'
import json, os, sys
work, nets = sys.argv[1], sys.argv[2:]

def load(name):
    """A result file's JSON, or None where the run failed or never came."""
    try:
        with open(os.path.join(work, name)) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None

def torch_ms(name, key):
    return {(r["model"], r["batch"]): r[key] for r in load(name) or []}

eager, compiled = torch_ms("eager.json", "eager_ms"), torch_ms("compile.json", "compile_ms")
ms = lambda v: "–" if v is None else f"{v:.3f}"
device = "the GPU"
print("| model | batch | archc ms | torch eager ms | torch.compile ms | archc/eager | check |")
print("|---|---|---|---|---|---|---|")
for net in nets:
    for batch in (1, 64):
        bench = load(f"bench_{net}_b{batch}.json")
        archc = bench["median_ms"] if bench else None
        device = bench["device"] if bench else device
        e = eager.get((net, batch))
        ratio = f"{archc / e:.2f}" if archc and e else "–"
        check = "-"
        if batch == 1 and os.path.exists(os.path.join(work, f"check_{net}.json")):
            c = load(f"check_{net}.json")
            check = "error" if c is None else f"{c['max_relative_error']:.1e}" + ("" if c["pass"] else " FAILED")
        cell = ms(archc) if bench else "error"
        print(f"| {net} | {batch} | {cell} | {ms(e)} | {ms(compiled.get((net, batch)))} | {ratio} | {check} |")
print(f"\n{device}, fp32; median ms of 50 runs by CUDA events; archc replays its launches as one CUDA graph, "
      "PyTorch launches eagerly (TF32 off); check: max relative error against archc's reference interpreter.")
EOF
}

case ${1-} in
prepare) prepare ;;
device)
    if [[ -n ${OUT-} ]]; then
        device "${@:2}" 2>&1 | tee "$OUT/gpu-check.log"
    else
        device "${@:2}"
    fi
    ;;
*)
    echo "usage: scripts/gpu-check.sh prepare | device [--no-compile]" >&2
    exit 2
    ;;
esac
