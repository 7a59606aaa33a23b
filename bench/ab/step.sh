#!/usr/bin/env bash
# Times one step of a compiled network alone, on one thread, its data left in the caches by the
# runs before it: what a kernel costs apart from the network around it (whose layers evict its
# input and weights), and the loop to iterate on a kernel's code in seconds rather than through
# whole-network A/B runs.
#
#     bench/ab/step.sh NET.ron STEP [archc compile flags...]
#     bench/ab/step.sh zoo/mobilenet_v2.ron 4 --schedules /tmp/archc-peers/schedules.json
#
# STEP counts the network's steps from 0 in the order `archc bench --profile` lists them (an
# input copy first where the network has one). The script compiles the network to assembly,
# makes its step functions global, and links them with archc's runtime (one thread: tasks run in
# order on the calling thread) and a driver that runs steps 0 to STEP-1 once so that STEP reads
# real activations, then times STEP 2001 times and prints the minimum and median in
# microseconds. Needs archc built (`cargo build --release`), or another archc binary named by
# $ARCHC (to time a step of two builds), and a C compiler.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
net=$1
step=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${ARCHC:-$root/target/release/archc}" compile "$net" --emit asm -o "$work/net.s" "$@" >/dev/null
name=$(sed -n 's/^\([A-Za-z0-9_]*\)_forward:$/\1/p' "$work/net.s" | head -1)
steps=$(grep -c "^${name}_s[0-9]*:$" "$work/net.s")
if [ "$step" -ge "$steps" ]; then
  echo "step.sh: $net has steps 0 to $((steps - 1)), not $step" >&2
  exit 2
fi
perl -pe "s/^\t\.type\t(${name}_s\d+),\@function/\t.globl \$1\n\t.type\t\$1,\@function/" "$work/net.s" >"$work/steps.s"
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo '#include <time.h>'
  echo "extern const float ${name}_weights[];"
  for ((s = 0; s <= step; s++)); do echo "void ${name}_s$s(void *, void *, const void *, void *);"; done
  echo 'static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }'
  echo 'int main(void) {'
  echo '  enum { RUNS = 2001 };'
  echo '  float *in = aligned_alloc(4096, 64 << 20), *out = aligned_alloc(4096, 64 << 20);'
  echo '  char *arena = aligned_alloc(4096, (size_t)1 << 30); /* pages are touched only as used */'
  echo '  for (long i = 0; i < (16 << 20); i++) in[i] = (float)(i % 13) * 0.1f;'
  for ((s = 0; s < step; s++)); do echo "  ${name}_s$s(in, out, ${name}_weights, arena);"; done
  echo '  static double t[RUNS];'
  echo '  for (int r = 0; r < RUNS; r++) {'
  echo '    struct timespec a, b;'
  echo '    clock_gettime(CLOCK_MONOTONIC, &a);'
  echo "    ${name}_s$step(in, out, ${name}_weights, arena);"
  echo '    clock_gettime(CLOCK_MONOTONIC, &b);'
  echo '    t[r] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) * 1e-3;'
  echo '  }'
  echo '  qsort(t, RUNS, sizeof t[0], cmp);'
  echo "  printf(\"$name step $step: min %.2f us, median %.2f us\\n\", t[0], t[RUNS / 2]);"
  echo '}'
} >"$work/driver.c"
runtime="$root/codegen/runtime"
cc -O2 -pthread -o "$work/step" "$work/driver.c" "$work/steps.s" "$runtime/runtime.c" "$runtime/scratch.c" \
  -Wl,-z,noexecstack
"$work/step"
