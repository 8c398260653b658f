#!/usr/bin/env bash
# The issue-22 "done when" check: `posetransfer demo` (its default, fixed and seeded schedule) once on a machine
# as quiet as it gets and once with one CPU-bound process beside it; both must beat copying the source on SSIM
# and L1. Writes each run's folder under OUT (default /tmp/posetransfer-demo-runs), one line per run to stdout and
# OUT/summary.tsv, and the table of every run in OUT/summary.tsv to OUT/demo_runs.md (the format of
# benchmarks/results/demo_runs.md).
#
#   bash benchmarks/demo_runs.sh [OUT]          # about 8 + 12 minutes on an idle 2-core CPU
#
# Environment: POSETRANSFER (the command, word-split; default: `posetransfer` on PATH), PYTHON (for the hog, default python3),
# LOCK (default /tmp/posetransfer-bench.lock: every timing on a shared machine holds it), RUNS ("quiet hog").
set -euo pipefail

OUT=${1:-/tmp/posetransfer-demo-runs}
POSETRANSFER=${POSETRANSFER:-posetransfer}
PYTHON=${PYTHON:-python3}
LOCK=${LOCK:-/tmp/posetransfer-bench.lock}
RUNS=${RUNS-"quiet hog"}
mkdir -p "$OUT"
# hold the bench lock for both runs (taken before any clock starts: waiting for it is not the demo's time)
exec 9>>"$LOCK"
echo "waiting for $LOCK ..." >&2
flock 9
summary="$OUT/summary.tsv"
[ -f "$summary" ] || printf 'run\tstarted\tload_before\tload_after\twall_s\tsteps\tmodel_ssim\tmodel_l1\tcopy_ssim\tcopy_l1\tuntrained_ssim\tuntrained_l1\tpassed\n' > "$summary"

one_run() {
    local name=$1 dir="$OUT/$1" hog="" load_before load_after t0 t1
    rm -rf "$dir"
    if [ "$name" = hog ]; then
        "$PYTHON" -c 'while True: pass' &
        hog=$!
        trap 'kill "$hog" 2>/dev/null || true' EXIT
        sleep 1
    fi
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s)
    $POSETRANSFER demo --out "$dir" --no-progress 2>"$dir.log" | tee "$dir.console.txt"
    t1=$(date +%s)
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ -n "$hog" ]; then kill "$hog"; wait "$hog" 2>/dev/null || true; trap - EXIT; fi
    "$PYTHON" - "$dir/metrics.json" "$name" "$(date -u -d @"$t0" +%FT%TZ)" "$load_before" "$load_after" \
        "$((t1 - t0))" >> "$summary" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
name, started, before, after, wall = sys.argv[2:7]
row = [name, started, before, after, wall, m["training"]["steps"],
       *(f"{m[k][s]:.4f}" for k in ("model", "copy_source", "untrained") for s in ("ssim", "l1")), m["passed"]]
print("\t".join(map(str, row)))
EOF
    tail -n 1 "$summary"
}

for run in $RUNS; do one_run "$run"; done

{
    echo "| run | started (UTC) | load average before → after (1, 5, 15 min) | wall (s) | steps | trained SSIM / L1 |" \
         "copy source SSIM / L1 | untrained SSIM / L1 | beats both on both |"
    echo "|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$summary" | while IFS=$'\t' read -r run started before after wall steps ms ml cs cl us ul passed; do
        echo "| $run | $started | $before → $after | $wall | $steps | $ms / $ml | $cs / $cl | $us / $ul | $passed |"
    done
} > "$OUT/demo_runs.md"
cat "$OUT/demo_runs.md"
