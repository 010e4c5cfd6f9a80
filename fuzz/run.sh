#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for DURATION each, one after the other:
#   fuzz/run.sh 10m               # the long run
#   fuzz/run.sh 5s frame sse      # a few seconds of two targets
# DURATION is seconds, or a number with s, m or h. Installs cargo-fuzz (pinned) into
# target/tools on first use; builds with libFuzzer instrumentation on stable Rust
# (RUSTC_BOOTSTRAP=1), no sanitizer (the code forbids unsafe; we look for panics, hangs, OOMs),
# with debug assertions and overflow checks on.
#
# Seeds are read from fuzz/corpus/<target>/ (committed, never written); what a run learns goes
# to target/fuzz-corpus/<target>/ (kept between runs). A crash, timeout or OOM stops the run
# with a non-zero exit and leaves its input in target/fuzz-artifacts/<target>/; reproduce it
# with `target/fuzz/x86_64-unknown-linux-gnu/release/<target> <artifact>`.
# Environment: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_JOBS (targets run at once, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(frame control mcp_inspect strict_json sse list_filter audit policy config jwks jwt bridge session_id enroll federation mediation)

usage() { echo "usage: fuzz/run.sh DURATION [TARGET...]  (targets: ${TARGETS[*]})" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
case "$1" in
  *h) secs=$(( ${1%h} * 3600 )) ;;
  *m) secs=$(( ${1%m} * 60 )) ;;
  *s) secs=${1%s} ;;
  *[!0-9]*|'') usage ;;
  *) secs=$1 ;;
esac
shift
if [[ $# -gt 0 ]]; then
  for t in "$@"; do [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "unknown target $t" >&2; usage; }; done
  TARGETS=("$@")
fi

TOOLS=$ROOT/target/tools
if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into target/tools"
  cargo install --locked --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$ROOT/target/fuzz
echo "==> building the fuzz targets"
(cd fuzz && "$TOOLS/bin/cargo-fuzz" build --sanitizer none --release --debug-assertions)
BIN=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release

RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
JOBS=${FUZZ_JOBS:-1}
LOGS=$ROOT/target/fuzz-logs
mkdir -p "$LOGS"

run_one() {
  local t=$1 work=$ROOT/target/fuzz-corpus/$1 art=$ROOT/target/fuzz-artifacts/$1
  mkdir -p "$work" "$art"
  local status=0
  # -max_total_time bounds the run; -timeout and -rss_limit_mb bound each input.
  "$BIN/$t" "$work" "fuzz/corpus/$t" \
    -max_total_time="$secs" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" \
    >"$LOGS/$t.log" 2>&1 || status=$?
  # The last coverage line and the final stats, for the summary.
  local last execs rate
  last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' || true)
  execs=$(grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$LOGS/$t.log" | grep -oE '[0-9]+$' || echo '?')
  rate=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$LOGS/$t.log" | grep -oE '[0-9]+$' || echo '?')
  if [[ $status -ne 0 ]]; then
    echo "FAIL $t (exit $status): $(ls -t "$art" | head -1) — see $LOGS/$t.log"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$LOGS/$t.log" | head -5 | sed 's/^/     /'
    return 1
  fi
  printf 'ok   %-12s %10s execs %7s/s  %s\n' "$t" "$execs" "$rate" "$last"
}

echo "==> fuzzing ${#TARGETS[@]} targets for ${secs}s each (${JOBS} at a time)"
failed=0
running=0
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [[ $running -ge $JOBS ]]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [[ $running -gt 0 ]]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [[ $failed -ne 0 ]]; then
  echo "fuzzing found a crash: artifacts in target/fuzz-artifacts/" >&2
  exit 1
fi
echo "==> fuzzing: no crash"
