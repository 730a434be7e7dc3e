#!/usr/bin/env bash
# Reliability campaign with a time budget: every fuzz target, the kill -9 crash loop (writes,
# flushes, compactions and recovery), kill -9 during `skysift import`, kill -9 during label
# rewrites, new fields and attach, fault injection at every
# I/O step (EIO and ENOSPC), the corruption matrix, rounds of reader threads and a reader process
# following a writer that is killed and taken over, and a disk-full run on a small tmpfs.
# Prints one scoreboard: per row what was injected (fuzz executions, I/O faults, kill -9s and other
# injections -- corruptions, reader snapshots -- in separate columns), survived, lost, panics,
# hangs, or `not run: why`; it ends with the totals line
#   scoreboard: fuzz N, faults N, kills N, other N, survived N, lost N, panics N, hangs N, not run N
# and exits 1 when anything was lost, panicked, hung or could not run (0 otherwise).
# Every figure is parsed from the run's own output (a summary line is found wherever it starts: test
# progress marks can precede it); a step that printed no figures is `not run`.
# A step that runs past STEP_TIMEOUT seconds (default: the budget plus 30 minutes) is a hang.
# Usage: scripts/campaign.sh [SECONDS [FUZZ_SECONDS]]
#   SECONDS       the budget (default 600); fuzzing gets half of it, split across the targets
#   FUZZ_SECONDS  seconds per fuzz target instead of that split (also read from the environment)
#   FUZZ_JOBS     fuzz targets run at a time (default 1; with 2, each gets twice the split)
#   FUZZ_TARGETS  space-separated fuzz targets to run (default: every [[bin]] of fuzz/Cargo.toml;
#                 "none" runs the other campaigns alone)
#   OVERLAP       1 (default): the fuzz targets run while the other rows run (fuzzing is bounded by
#                 time, so the run takes the longer of the two, not their sum); 0: one after the other
#   CRASH_KILLS   kill -9s of the storage loop (default: half the budget)
#   CRASH_JOBS    storage kill loops side by side (default 2)
#   CRASH_ROUND   kills after which a storage loop starts a fresh database (default 1000)
#   IMPORT_KILLS  kill -9s during `skysift import` (default: a twentieth of the budget)
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
kills="${CRASH_KILLS:-$(( budget / 2 ))}"
[ "$kills" -lt 100 ] && kills=100
import_kills="${IMPORT_KILLS:-$(( budget / 20 ))}"
[ "$import_kills" -lt 20 ] && import_kills=20
overlap="${OVERLAP:-1}"
rewrite_kills=$(( budget / 10 ))
[ "$rewrite_kills" -lt 30 ] && rewrite_kills=30
conc_rounds=$(( budget / 60 ))
[ "$conc_rounds" -lt 10 ] && conc_rounds=10
log="$(mktemp -d)"
# The commit the run is built from, read now (a commit made while it runs would be named otherwise);
# "+ uncommitted changes" when the working tree differs from it in what the campaign builds.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- src storage tests fuzz Cargo.toml Cargo.lock 2>/dev/null; then
  commit="$commit + uncommitted changes"
fi
step_timeout="${STEP_TIMEOUT:-$(( budget + 1800 ))}"
rows=()
declare -A tot=([fuzz]=0 [fault]=0 [kill]=0 [other]=0 [survived]=0 [lost]=0 [panics]=0 [hangs]=0 [notrun]=0)
# add NAME KIND INJECTED SURVIVED LOST PANICS HANGS: one measured row; KIND is fuzz, fault, kill
# or other (the column its injections count in); LOST is "-" where the row cannot lose data.
add() {
  local name="$1" kind="$2" inj="$3" surv="$4" lost="$5" pan="$6" hang="$7"
  local -A col=([fuzz]=- [fault]=- [kill]=- [other]=-)
  col[$kind]="$inj"
  rows+=("$(printf '%-24s %10s %8s %7s %9s %10s %6s %7s %6s' "$name" "${col[fuzz]}" "${col[fault]}" \
    "${col[kill]}" "${col[other]}" "$surv" "$lost" "$pan" "$hang")")
  tot[$kind]=$(( tot[$kind] + inj )); tot[survived]=$(( tot[survived] + surv ))
  [ "$lost" != - ] && tot[lost]=$(( tot[lost] + lost ))
  tot[panics]=$(( tot[panics] + pan )); tot[hangs]=$(( tot[hangs] + hang ))
}
notrun() { # NAME WHY
  rows+=("$(printf '%-24s not run: %s' "$1" "$2")")
  tot[notrun]=$(( tot[notrun] + 1 ))
}
# run_test LOGNAME [ENV=VALUE...] -- CARGO TEST ARGS: runs one test under the step timeout; sets
# $rc (124: it hung) and $pan (panics printed).
run_test() {
  local name="$1"; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout --signal=KILL "$step_timeout" cargo test --release --quiet --test tests -- "$@" --nocapture \
    >"$log/$name.txt" 2>&1
  rc=$?
  [ "$rc" = 137 ] && rc=124
  pan=$(grep -c "panicked" "$log/$name.txt" || true)
}
hung() { [ "$rc" = 124 ] && echo 1 || echo 0; }
# field LINE REGEX: the number REGEX's group captures in LINE, or nothing.
field() { sed -nE "s/.*$2.*/\1/p" <<<"$1"; }
scoreboard() {
  echo
  echo "campaign scoreboard (commit $commit, $(( SECONDS / 60 )) min, logs in $log)"
  printf '%-24s %10s %8s %7s %9s %10s %6s %7s %6s\n' row fuzz-execs faults kills other survived lost panics hangs
  printf '%s\n' "${rows[@]}"
  echo "scoreboard: fuzz ${tot[fuzz]}, faults ${tot[fault]}, kills ${tot[kill]}, other ${tot[other]}, survived ${tot[survived]}," \
    "lost ${tot[lost]}, panics ${tot[panics]}, hangs ${tot[hangs]}, not run ${tot[notrun]}"
  if [ $(( tot[lost] + tot[panics] + tot[hangs] + tot[notrun] )) -gt 0 ]; then exit 1; fi
  exit 0
}

echo "== building"
if ! cargo build --release --quiet --tests >"$log/build.txt" 2>&1; then
  tail -20 "$log/build.txt"
  notrun "every row" "the release build of the tests failed (see $log/build.txt)"
  scoreboard
fi
fuzz_one() { # target: fuzzes it for $per seconds; the log goes to $log/fuzz-$t.txt
  local t="$1"
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  cp -n fuzz/corpus/"$t"/* "fuzz/work/$t/" 2>/dev/null
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  (cd fuzz && timeout --signal=KILL "$(( per + 600 ))" cargo fuzz run -s none -O "$t" "work/$t" -- \
    -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" -artifact_prefix="artifacts/$t/") \
    >"$log/fuzz-$t.txt" 2>&1
  echo $? >"$log/fuzz-$t.rc"
}
# fuzz_all: every target, at most $jobs_max at a time; fuzz_rows: their rows, once they are done.
fuzz_all() {
  for t in "${targets[@]}"; do
    echo "== fuzz $t for ${per}s"
    fuzz_one "$t" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  done
  wait
}
fuzz_rows() {
  for t in "${targets[@]}"; do
    runs=$(grep -oE 'Done [0-9]+ runs' "$log/fuzz-$t.txt" | grep -oE '[0-9]+' | tail -1)
    # Only the artifacts of this run count.
    ls "fuzz/artifacts/$t" | sort | comm -13 "$log/artifacts-before-$t" - >"$log/artifacts-new-$t"
    crashes=$(grep -c '^crash-' "$log/artifacts-new-$t")
    hangs=$(grep -cE '^(timeout|slow-unit|oom)-' "$log/artifacts-new-$t")
    [ "$(cat "$log/fuzz-$t.rc" 2>/dev/null)" = 137 ] && hangs=$(( hangs + 1 ))
    new=$(wc -l <"$log/artifacts-new-$t")
    if [ -z "$runs" ] && [ "$new" = 0 ]; then
      notrun "fuzz:$t" "libFuzzer printed no run count (see $log/fuzz-$t.txt)"
    else
      runs=${runs:-0}
      add "fuzz:$t" fuzz "$runs" $(( runs > new ? runs - new : 0 )) - "$crashes" "$hangs"
    fi
  done
}
fuzz_pid=""
fuzzing=0
if [ ${#targets[@]} -eq 0 ]; then
  echo "FUZZ_TARGETS=none: fuzzing skipped"
elif ! command -v cargo-fuzz >/dev/null 2>&1; then
  notrun "fuzz" "cargo-fuzz is not installed (cargo install cargo-fuzz)"
elif ! (cd fuzz && cargo fuzz build -s none -O >"$log/fuzz-build.txt" 2>&1); then
  notrun "fuzz" "the fuzz targets did not build (see $log/fuzz-build.txt)"
else
  fuzzing=1
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$t"
    ls "fuzz/artifacts/$t" | sort >"$log/artifacts-before-$t"
  done
  if [ "$overlap" = 1 ]; then
    echo "== fuzzing in the background while the other rows run (OVERLAP=0: one after the other)"
    fuzz_all >"$log/fuzz-all.txt" 2>&1 &
    fuzz_pid=$!
  else
    fuzz_all
    fuzz_rows
    fuzzing=0
  fi
fi

echo "== kill -9 crash loop: $kills kills"
run_test crash SKYSIFT_CRASH_KILLS="$kills" SKYSIFT_CRASH_JOBS="${CRASH_JOBS:-2}" \
  SKYSIFT_CRASH_ROUND="${CRASH_ROUND:-1000}" -- --exact crash::kill9_loses_no_committed_batch
line=$(grep -m1 -oE 'crash campaign: kills.*' "$log/crash.txt")
if [ -n "$line" ]; then
  # A kill before the child created the database leaves nothing to reopen: it survived.
  early=$(field "$line" 'killed before the database existed ([0-9]+)')
  add "kill -9 storage loop" kill "$(field "$line" 'kills ([0-9]+)')" \
    $(( $(field "$line" 'reopened OK ([0-9]+)') + ${early:-0} )) "$(field "$line" 'batches lost ([0-9]+)')" "$pan" "$(hung)"
  echo "   ($(field "$line" 'killed during recovery ([0-9]+)') of those kills landed while the writer was recovering, ${early:-0} before it had created the database)"
else
  notrun "kill -9 storage loop" "no summary printed (exit $rc, $pan panics; see $log/crash.txt)"
fi

echo "== kill -9 during import: $import_kills kills"
run_test import-crash SKYSIFT_IMPORT_KILLS="$import_kills" -- --exact crash::import_kill9_loses_no_committed_file
line=$(grep -m1 -oE 'import crash campaign: kills.*' "$log/import-crash.txt")
if [ -n "$line" ]; then
  add "kill -9 import" kill "$(field "$line" 'kills ([0-9]+)')" "$(field "$line" 'reopened OK ([0-9]+)')" \
    "$(field "$line" 'files lost ([0-9]+)')" "$pan" "$(hung)"
else
  notrun "kill -9 import" "no summary printed (exit $rc, $pan panics; see $log/import-crash.txt)"
fi

echo "== kill -9 during labels, new fields and attach: $rewrite_kills kills"
run_test rewrite SKYSIFT_REWRITE_KILLS="$rewrite_kills" -- --exact \
  crash_rewrite::kill9_during_labels_new_fields_and_attach_loses_nothing
line=$(grep -m1 -oE 'rewrite crash campaign: kills.*' "$log/rewrite.txt")
if [ -n "$line" ]; then
  # Lost: records missing, duplicated or changed, labels neither old nor new, runs that ended
  # short of their work, shards attached in part.
  bad=0
  for f in 'records lost ([0-9]+)' 'duplicated ([0-9]+)' 'changed ([0-9]+)' 'labels neither old nor new ([0-9]+)' \
    'runs that ended short ([0-9]+)' 'shards partly attached ([0-9]+)'; do
    bad=$(( bad + $(field "$line" "$f") ))
  done
  add "kill -9 label/attach" kill "$(field "$line" 'kills ([0-9]+)')" "$(field "$line" 'reopened OK ([0-9]+)')" \
    "$bad" "$pan" "$(hung)"
  echo "   ${line#rewrite crash campaign: }"
else
  notrun "kill -9 label/attach" "no summary printed (exit $rc, $pan panics; see $log/rewrite.txt)"
fi

echo "== fault injection at every I/O step"
run_test faults -- faults::
for kind in EIO ENOSPC; do
  line=$(grep -m1 -oE "fault injection $kind.*" "$log/faults.txt")
  if [ -n "$line" ]; then
    i=$(field "$line" 'injected ([0-9]+)'); s=$(field "$line" 'survived ([0-9]+)')
    # A fault whose reopen showed neither the state before nor after it fails the test; the
    # campaign counts what did not survive as lost.
    add "faults:$kind" fault "$i" "$s" $(( i - s )) 0 0
  else
    notrun "faults:$kind" "no summary printed (exit $rc; see $log/faults.txt)"
  fi
done
[ "$pan" -gt 0 ] || [ "$rc" = 124 ] && add "faults (test harness)" fault 0 0 0 "$pan" "$(hung)"

echo "== corruption matrix"
run_test corruption -- corruption::
line=$(grep -m1 -oE 'corruption matrix.*' "$log/corruption.txt")
if [ -n "$line" ]; then
  m=$(field "$line" 'mutations: ([0-9]+)'); silent=$(field "$line" 'silent: ([0-9]+)')
  mpan=$(field "$line" 'panics: ([0-9]+)'); other=$(field "$line" 'other_errors: ([0-9]+)')
  add "corruption matrix" other "$m" $(( m - silent - mpan - other )) "$(( silent + other ))" "$mpan" "$(hung)"
else
  notrun "corruption matrix" "no summary printed (exit $rc, $pan panics; see $log/corruption.txt)"
fi

echo "== concurrency: $conc_rounds rounds of reader threads and a reader process following a writer"
run_test concurrency SKYSIFT_CONCURRENCY_ROUNDS="$conc_rounds" -- --exact \
  concurrency::readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts
# Each reader snapshot is compared with the model of the writer's batches: a mismatch is a lost
# (or wrong) answer.
line=$(grep -m1 -oE 'concurrency: rounds.*' "$log/concurrency.txt")
if [ -n "$line" ]; then
  total=$(( $(field "$line" 'snapshots compared ([0-9]+) in threads') + $(field "$line" 'and ([0-9]+) in the reader process') ))
  mism=$(field "$line" ', mismatches ([0-9]+),')
  add "concurrency snapshots" other "$total" $(( total - mism )) "$mism" "$pan" "$(hung)"
  echo "   ${line#concurrency: }"
else
  notrun "concurrency snapshots" "no summary printed (exit $rc, $pan panics; see $log/concurrency.txt)"
fi

echo "== disk full on a 3 MiB tmpfs"
small="$(mktemp -d)"
if mount -t tmpfs -o size=3m tmpfs "$small" 2>/dev/null; then
  run_test diskfull SKYSIFT_SMALL_FS="$small" -- --exact --ignored faults::disk_full_on_a_small_filesystem_keeps_committed_batches
  umount "$small"
  line=$(grep -m1 -oE 'disk full.*' "$log/diskfull.txt")
  if [ -n "$line" ]; then
    lost=$(field "$line" 'rows lost ([0-9]+)')
    add "disk full (tmpfs)" fault 1 $(( lost == 0 && rc == 0 ? 1 : 0 )) "$lost" "$pan" "$(hung)"
  else
    notrun "disk full (tmpfs)" "no summary printed (exit $rc, $pan panics; see $log/diskfull.txt)"
  fi
else
  notrun "disk full (tmpfs)" "cannot mount a tmpfs here (needs root)"
fi
rmdir "$small" 2>/dev/null

if [ "$fuzzing" = 1 ]; then
  if [ -n "$fuzz_pid" ]; then
    echo "== waiting for the fuzz targets"
    wait "$fuzz_pid"
  fi
  fuzz_rows
fi

scoreboard
