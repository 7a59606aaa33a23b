#!/usr/bin/env bash
# Checks and times archc's PTX backend on an NVIDIA GPU, beside PyTorch, in two phases
# (bench/gpu/README.md says more):
#   scripts/gpu-check.sh prepare               here, with Rust and LLVM: builds archc and archc-gpu,
#                                              packs them with the libraries the GPU machine lacks,
#                                              codegen's differential test suites, and the timed
#                                              networks compiled, into gpu-bundle/
#   scripts/gpu-check.sh device [--no-compile] on the GPU machine, from the repository root, with
#                                              gpu-bundle/ carried: checks every zoo network against
#                                              the interpreter and the torchvision ones against
#                                              PyTorch, times, prints one table
#   scripts/gpu-check.sh cpu                   on the GPU machine likewise: runs codegen's test
#                                              suites on its CPU, whose vector width (AVX-512 on
#                                              most GPU hosts) the development machines lack
set -euo pipefail
cd "$(dirname "$0")/.."

# Timed at batch 1 and 64, against PyTorch.
NETS=(shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 mobilenet_v2)
# Checked against PyTorch with the same seeded weights (scripts/torch_parity.py's models).
PARITY=(shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 mobilenet_v2 resnet18 resnet50)
# archc is linked to Debian's LLVM 19, which the GPU machine (Ubuntu 24.04) lacks, as it lacks
# libz3 4: both travel compressed. Everything else libLLVM needs is there.
LIBS=(libLLVM.so.19.1 libz3.so.4)
# codegen's suites that compare compiled native code with the interpreter (random graphs, odd
# shapes, every zoo network, training steps), each run with the host's kernels.
CPU_SUITES=(kernels random_graphs zoo training)
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
    mkdir -p "$BUNDLE/lib"
    for net in "${NETS[@]}"; do
        for batch in 1 64; do
            echo "compiling $net at batch $batch"
            "$archc" compile "zoo/$net.ron" --target cuda --arch sm_90 --batch "$batch" --emit ptx \
                -o "$BUNDLE/${net}_b$batch.ptx"
        done
    done
    # The timing runs on zero weights, which take as long; the checks compile their own there.
    rm "$BUNDLE"/*.weights
    mkdir -p "$BUNDLE/suites"
    cargo test --release -p codegen --no-run --message-format=json \
        | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])' \
        | while read -r name exe; do
            if [[ " ${CPU_SUITES[*]} " == *" $name "* ]]; then
                xz -T0 -6 -c "$exe" >"$BUNDLE/suites/$name.xz"
            fi
        done
    # The suites find the zoo through the path of the checkout they were built in.
    pwd >"$BUNDLE/suites/root"
    cp "$archc" target/release/archc-gpu "$BUNDLE/"
    for lib in "${LIBS[@]}"; do
        local path
        path=$(ldd "$archc" | awk -v lib="$lib" '$1 == lib { print $3 }')
        [[ -f $path ]] || { echo "archc does not link $lib: update LIBS" >&2; exit 1; }
        echo "compressing $path"
        xz -T0 -6 -c "$path" >"$BUNDLE/lib/$lib.xz"
    done
    local bundle tree
    bundle=$(du -sb "$BUNDLE" | cut -f1)
    tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
    echo "$BUNDLE: $((bundle / 1024 / 1024)) MiB; with the tracked tree: $(((bundle + tree) / 1024 / 1024)) MiB (limit 64)"
    if ((bundle + tree > LIMIT_MIB * 1024 * 1024)); then
        echo "too large to carry to the device" >&2
        exit 1
    fi
}

device() {
    local compile=1
    [[ ${1-} == --no-compile ]] && compile=0
    local start=$SECONDS work gpu=$BUNDLE/archc-gpu archc=$BUNDLE/archc failed=0
    work=$(mktemp -d)
    chmod +x "$gpu" "$archc"
    nvidia-smi -L
    unpack_libs "$work"
    if "$archc" --version; then
        # Every zoo network against the interpreter, then the torchvision ones against PyTorch.
        timeout "$(left 10)" python3 bench/gpu/zoo_check.py --archc "$archc" --jobs 16 --json "$work/zoo.json" \
            | tee "$work/zoo.md" || failed=1
        printf '%s\n' "${PARITY[@]}" | timeout "$(left 10)" xargs -P 8 -I{} python3 scripts/torch_parity.py \
            --model {} --out "$work/parity" --archc "$archc" --backend cuda | tee "$work/parity.txt" || failed=1
    else
        echo "archc does not start here (its libraries: below); the checks are skipped"
        ldd "$archc"
        failed=1
    fi
    for net in "${NETS[@]}"; do
        for batch in 1 64; do
            timeout "$(left 10)" "$gpu" bench "$BUNDLE/${net}_b$batch.ptx" --json \
                >"$work/bench_${net}_b$batch.json" || failed=1
            cat "$work/bench_${net}_b$batch.json"
        done
    done
    timeout "$(left 10)" python3 bench/gpu/torch_baseline.py --models "${NETS[@]}" --batches 1 64 --no-compile \
        --json "$work/eager.json" || echo "torch eager stopped early; the rows it finished are kept"
    # torch.compile takes tens of seconds per model to warm up: batch 1 only, in what time is left.
    if ((compile && $(left 10) > 60)); then
        timeout -k 10 "$(left 10)" python3 bench/gpu/torch_baseline.py --models "${NETS[@]}" --batches 1 \
            --json "$work/compile.json" || echo "torch.compile stopped early; the rows it finished are kept"
    fi
    table "$work" | tee "$work/gpu-check.md"
    if [[ -n ${OUT-} ]]; then
        cp "$work/gpu-check.md" "$OUT/"
    fi
    echo "device phase: $((SECONDS - start)) s"
    exit "$failed"
}

# Seconds left of the phase's budget since its `start`, less $1 kept for what follows (the
# device phase's table); at least 1, since `timeout 0` would mean no limit at all.
left() {
    local s=$((BUDGET_S - (SECONDS - start) - $1))
    echo $((s > 1 ? s : 1))
}

# Unpacks the carried libraries into folder $1/lib and puts them on the loader's path.
unpack_libs() {
    mkdir -p "$1/lib"
    for lib in "${LIBS[@]}"; do
        xz -dc "$BUNDLE/lib/$lib.xz" >"$1/lib/$lib"
    done
    export LD_LIBRARY_PATH=$1/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# codegen's differential suites on this machine's CPU, with its own kernels (AVX-512 where it
# has it: a vector width and register tile the development machines never run).
cpu() {
    local start=$SECONDS work root failed=0
    work=$(mktemp -d)
    unpack_libs "$work"
    grep -m1 'model name' /proc/cpuinfo
    if grep -qw avx512f /proc/cpuinfo; then
        echo "AVX-512: yes (the suites run 16-lane kernels, and the AVX2 ones where they compare both)"
    else
        echo "AVX-512: no (the suites run the same kernels as the development machines)"
    fi
    command -v cc >/dev/null || { echo "no C compiler: compiled models link their runtime with cc" >&2; exit 1; }
    root=$(cat "$BUNDLE/suites/root")
    if [[ ! -d $root/zoo ]]; then
        mkdir -p "$(dirname "$root")"
        ln -sfn "$PWD" "$root"
    fi
    for suite in "${CPU_SUITES[@]}"; do
        xz -dc "$BUNDLE/suites/$suite.xz" >"$work/$suite"
        chmod +x "$work/$suite"
        echo "== $suite"
        (cd "$root/codegen" && timeout "$(left 0)" "$work/$suite" --test-threads "$(nproc)") || failed=1
    done
    # Every zoo network at its own input size, compiled by the carried archc for this CPU.
    chmod +x "$BUNDLE/archc"
    timeout "$(left 0)" python3 bench/gpu/zoo_check.py --archc "$BUNDLE/archc" --backend cpu \
        --jobs "$(nproc)" || failed=1
    echo "cpu phase: $((SECONDS - start)) s"
    exit "$failed"
}

# The markdown tables from the results in folder $1.
table() {
    python3 - "$1" "${NETS[@]}" <<'EOF'
import json, os, re, sys
work, nets = sys.argv[1], sys.argv[2:]

def load(name):
    """A result file's JSON, or None where the run failed or never came."""
    try:
        with open(os.path.join(work, name)) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None

def torch_ms(name, key):
    return {(r["model"], r["batch"]): r.get(key) for r in load(name) or []}

def text(name):
    path = os.path.join(work, name)
    return open(path).read() if os.path.exists(path) else ""

eager, graph = torch_ms("eager.json", "eager_ms"), torch_ms("eager.json", "graph_ms")
compiled = torch_ms("compile.json", "compile_ms")
zoo = {r["network"]: r for r in load("zoo.json") or []}
parity = dict(re.findall(r"^(\w+): archc \(cuda\) vs torch: .*relative error = (\S+)$", text("parity.txt"), re.M))
ms = lambda v: "–" if v is None else f"{v:.3f}"
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
device = "the GPU"
print("| model | batch | archc ms | torch eager ms | torch eager, CUDA graph ms | torch.compile ms "
      "| archc / eager | archc / graph | vs interpreter | vs torch |")
print("|---|---|---|---|---|---|---|---|---|---|")
for net in nets:
    for batch in (1, 64):
        bench = load(f"bench_{net}_b{batch}.json")
        archc = bench["median_ms"] if bench else None
        device = bench["device"] if bench else device
        key = (net, batch)
        interp, vs_torch = "", ""
        if batch == 1:
            z = zoo.get(f"zoo/{net}.ron")
            interp = "–" if z is None else f"{z['max_relative_error']:.1e}" if z["pass"] else "FAILED"
            vs_torch = f"{float(parity[net]):.1e}" if net in parity else "–"
        print(f"| {net} | {batch} | {ms(archc) if bench else 'error'} | {ms(eager.get(key))} | {ms(graph.get(key))} "
              f"| {ms(compiled.get(key))} | {ratio(archc, eager.get(key))} | {ratio(archc, graph.get(key))} "
              f"| {interp} | {vs_torch} |")
print(f"\n{device}, fp32 (TF32 off); median ms of 50 runs by CUDA events. archc replays its launches as one "
      "CUDA graph; PyTorch runs eagerly, and eagerly captured as one CUDA graph. Errors: max relative error "
      "at batch 1 against archc's interpreter (same seeded weights) and against PyTorch (same seeded "
      "torchvision weights, on the GPU).")
print("\n## Every zoo network against the interpreter, on the GPU\n")
print(text("zoo.md").strip() or "not run")
print("\n## torchvision models against PyTorch, both on the GPU\n")
print("\n".join(l for l in text("parity.txt").splitlines() if " vs torch: " in l) or "not run")
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
cpu)
    if [[ -n ${OUT-} ]]; then
        cpu 2>&1 | tee "$OUT/cpu-check.log"
    else
        cpu
    fi
    ;;
*)
    echo "usage: scripts/gpu-check.sh prepare | device [--no-compile] | cpu" >&2
    exit 2
    ;;
esac
