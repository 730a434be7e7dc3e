#!/usr/bin/env bash
# Reliability campaign with a time budget: every fuzz target, the kill -9 crash loop (writes,
# flushes, compactions and recovery), kill -9 during `skysift import`, fault injection at every
# I/O step (EIO and ENOSPC), the corruption matrix, rounds of reader threads and a reader process
# following a writer that is killed and taken over, and a disk-full run on a small tmpfs.
# Prints one scoreboard and ends with the totals line:
#   scoreboard: injected N, survived N, lost N, panics N, hangs N
# Usage: scripts/campaign.sh [SECONDS [FUZZ_SECONDS]]
#   SECONDS       the budget (default 600); fuzzing gets half of it, split across the targets
#   FUZZ_SECONDS  seconds per fuzz target instead of that split (also read from the environment)
#   FUZZ_JOBS     fuzz targets run at a time (default 1; with 2, each gets twice the split)
#   FUZZ_TARGETS  space-separated fuzz targets to run (default: every [[bin]] of fuzz/Cargo.toml;
#                 "none" runs the other campaigns alone)
set -uo pipefail
cd "$(dirname "$0")/.."
budget="${1:-600}"
mapfile -t targets < <(awk '/^\[\[bin\]\]/ { bin = 1 } bin && /^name *= */ { gsub(/"/, "", $3); print $3; bin = 0 }' fuzz/Cargo.toml)
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"${FUZZ_TARGETS/none/}"
fi
jobs_max="${FUZZ_JOBS:-1}"
[ "$jobs_max" -lt 1 ] && jobs_max=1
per="${2:-${FUZZ_SECONDS:-$(( budget / 2 * jobs_max / (${#targets[@]} + (${#targets[@]} == 0)) ))}}"
[ "$per" -lt 5 ] && per=5
kills=$(( budget / 2 ))
[ "$kills" -lt 100 ] && kills=100
import_kills=$(( budget / 20 ))
[ "$import_kills" -lt 20 ] && import_kills=20
conc_rounds=$(( budget / 60 ))
[ "$conc_rounds" -lt 10 ] && conc_rounds=10
log="$(mktemp -d)"
rows=()
tot_inj=0; tot_surv=0; tot_lost=0; tot_pan=0; tot_hang=0
add() { # campaign injected survived lost panics hangs
  rows+=("$(printf '%-22s injected %8s  survived %8s  lost %4s  panics %3s  hangs %3s' "$@")")
  tot_inj=$((tot_inj + $2)); tot_surv=$((tot_surv + $3)); tot_lost=$((tot_lost + $4))
  tot_pan=$((tot_pan + $5)); tot_hang=$((tot_hang + $6))
}

echo "== building"
cargo build --release --quiet --tests 2>&1 | tail -3
fuzz_one() { # target: fuzzes it for $per seconds; the log goes to $log/fuzz-$t.txt
  local t="$1"
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  cp -n fuzz/corpus/"$t"/* "fuzz/work/$t/" 2>/dev/null
  (cd fuzz && cargo fuzz run -s none -O "$t" "work/$t" -- -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/") >"$log/fuzz-$t.txt" 2>&1
}
if [ ${#targets[@]} -eq 0 ]; then
  echo "FUZZ_TARGETS=none: fuzzing skipped"
elif command -v cargo-fuzz >/dev/null 2>&1; then
  (cd fuzz && cargo fuzz build -s none -O >/dev/null 2>&1) || echo "fuzz build failed"
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t"
    ls "fuzz/artifacts/$t" | sort >"$log/artifacts-before-$t"
    echo "== fuzz $t for ${per}s"
    fuzz_one "$t" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  done
  wait
  for t in "${targets[@]}"; do
    runs=$(grep -oE 'Done [0-9]+ runs' "$log/fuzz-$t.txt" | grep -oE '[0-9]+' | tail -1)
    # Only the artifacts of this run count.
    ls "fuzz/artifacts/$t" | sort | comm -13 "$log/artifacts-before-$t" - >"$log/artifacts-new-$t"
    crashes=$(grep -c '^crash-' "$log/artifacts-new-$t")
    hangs=$(grep -cE '^(timeout|slow-unit|oom)-' "$log/artifacts-new-$t")
    new=$(wc -l <"$log/artifacts-new-$t")
    runs=${runs:-0}
    add "fuzz:$t" "$runs" $(( runs - new )) 0 "$crashes" "$hangs"
  done
else
  echo "cargo-fuzz is not installed (cargo install cargo-fuzz): fuzzing skipped"
fi

echo "== kill -9 crash loop: $kills kills"
SKYSIFT_CRASH_KILLS="$kills" cargo test --release --test tests -- --exact crash::kill9_loses_no_committed_batch --nocapture \
  >"$log/crash.txt" 2>&1
line=$(grep -E '^crash campaign: kills' "$log/crash.txt")
k=$(sed -E 's/.*kills ([0-9]+).*/\1/' <<<"$line"); ok=$(sed -E 's/.*reopened OK ([0-9]+).*/\1/' <<<"$line")
lost=$(sed -E 's/.*batches lost ([0-9]+).*/\1/' <<<"$line")
pan=$(grep -c "panicked" "$log/crash.txt" || true)
rec=$(sed -nE 's/.*killed during recovery ([0-9]+).*/\1/p' <<<"$line")
add "kill -9 loop" "${k:-0}" "${ok:-0}" "${lost:-0}" "$pan" 0
echo "   (${rec:-0} of those kills landed while the writer was recovering from the kill before)"

echo "== kill -9 during import: $import_kills kills"
SKYSIFT_IMPORT_KILLS="$import_kills" cargo test --release --test tests -- --exact crash::import_kill9_loses_no_committed_file \
  --nocapture >"$log/import-crash.txt" 2>&1
line=$(grep -E '^import crash campaign: kills' "$log/import-crash.txt")
k=$(sed -E 's/.*kills ([0-9]+).*/\1/' <<<"$line"); ok=$(sed -E 's/.*reopened OK ([0-9]+).*/\1/' <<<"$line")
lost=$(sed -E 's/.*files lost ([0-9]+).*/\1/' <<<"$line")
pan=$(grep -c "panicked" "$log/import-crash.txt" || true)
add "kill -9 import" "${k:-0}" "${ok:-0}" "${lost:-0}" "$pan" 0

echo "== fault injection at every I/O step"
cargo test --release --test tests faults:: -- --nocapture >"$log/faults.txt" 2>&1
for kind in EIO ENOSPC; do
  line=$(grep -E "^fault injection $kind" "$log/faults.txt")
  i=$(sed -E 's/.*injected ([0-9]+).*/\1/' <<<"$line"); s=$(sed -E 's/.*survived ([0-9]+).*/\1/' <<<"$line")
  add "faults:$kind" "${i:-0}" "${s:-0}" 0 0 0
done
pan=$(grep -c "panicked" "$log/faults.txt" || true)
[ "$pan" -gt 0 ] && add "faults:panics" 0 0 0 "$pan" 0

echo "== corruption matrix"
cargo test --release --test tests corruption:: -- --nocapture >"$log/corruption.txt" 2>&1
line=$(grep -E '^corruption matrix' "$log/corruption.txt")
m=$(sed -E 's/.*mutations: ([0-9]+).*/\1/' <<<"$line"); silent=$(sed -E 's/.*silent: ([0-9]+).*/\1/' <<<"$line")
pan=$(sed -E 's/.*panics: ([0-9]+).*/\1/' <<<"$line")
add "corruption matrix" "${m:-0}" $(( ${m:-0} - ${silent:-0} - ${pan:-0} )) "${silent:-0}" "${pan:-0}" 0

echo "== concurrency: $conc_rounds rounds of 16 reader threads and a reader process following a writer"
SKYSIFT_CONCURRENCY_ROUNDS="$conc_rounds" cargo test --release --test tests -- --exact \
  concurrency::readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts --nocapture \
  >"$log/concurrency.txt" 2>&1
ok=$(grep -c '^concurrency round [0-9]* ok' "$log/concurrency.txt" || true)
pan=$(grep -c "panicked" "$log/concurrency.txt" || true)
add "concurrency rounds" "$conc_rounds" "$ok" 0 "$pan" 0
sed -nE 's/^concurrency: rounds [0-9]+, (.*)/   (\1)/p' "$log/concurrency.txt"

echo "== disk full on a 3 MiB tmpfs"
small="$(mktemp -d)"
if mount -t tmpfs -o size=3m tmpfs "$small" 2>/dev/null; then
  SKYSIFT_SMALL_FS="$small" cargo test --release --test tests -- --exact --ignored \
    faults::disk_full_on_a_small_filesystem_keeps_committed_batches --nocapture >"$log/diskfull.txt" 2>&1
  line=$(grep -E '^disk full' "$log/diskfull.txt")
  lost=$(sed -E 's/.*rows lost ([0-9]+).*/\1/' <<<"$line")
  if grep -q "test result: ok" "$log/diskfull.txt"; then add "disk full (tmpfs)" 1 1 "${lost:-0}" 0 0
  else add "disk full (tmpfs)" 1 0 "${lost:-0}" "$(grep -c panicked "$log/diskfull.txt")" 0; fi
  umount "$small"
else
  echo "cannot mount a tmpfs here (needs root): disk-full run skipped"
fi

echo
echo "campaign scoreboard (logs in $log)"
printf '%s\n' "${rows[@]}"
echo "scoreboard: injected $tot_inj, survived $tot_surv, lost $tot_lost, panics $tot_pan, hangs $tot_hang"
