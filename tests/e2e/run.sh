#!/usr/bin/env bash
# Runs the end-to-end scenarios. Brings the test world up if it is not, and then takes it down
# again afterwards (a world someone else started is left running).
#
# Scenarios that need a world of their own (another AWS model, every call counted) run in their
# own make targets, listed in WORLD_TESTS (beside this run: make e2e-worlds), not here: ec2_events
# (make events-e2e), erasure_lag (make e2e-erasure-lag) and launch_model (make e2e-launch: its
# tests switch the model).
# Every other file of tests/e2e/tests runs here.
#
# The scenarios wait on timers far more than they compute (listing lag, boot, deadlines), so
# E2E_JOBS test binaries (default 3) run at once, each with 4 test threads, longest first. The
# binaries in ALONE set fault rules on the shared fault proxy that hit every caller (30% of EC2
# throttled, DeleteSecurityGroup refused) and clear every rule: they run first, one at a time,
# with nothing beside them. A scenario that sets a world-wide rule belongs in ALONE.
set -euo pipefail
cd "$(dirname "$0")/../.."
OWN_WORLD="ec2_events erasure_lag launch_model"
ALONE="throttle blocked erasure_faults"
# Started first so the longest does not start last (seconds each took on 2026-11-29, in order).
LONGEST="identity boot_dns workspace health leader crash fencing data_volume dns_batch
  hung_cloud lifecycle tenant_identity shard_move gitops plugin orphans"
JOBS=${E2E_JOBS:-3}
LOGS=${E2E_LOG_DIR:-target/e2e-logs}

# E2E_ONLY="a b": only these binaries (a scenario under work), else every one.
tests=()
for f in tests/e2e/tests/*.rs; do
  name=$(basename "$f" .rs)
  case " $OWN_WORLD " in *" $name "*) continue ;; esac
  if [ -n "${E2E_ONLY:-}" ]; then case " $E2E_ONLY " in *" $name "*) ;; *) continue ;; esac; fi
  tests+=(--test "$name")
done

# Build every scenario binary once; cargo's JSON names each binary's executable (diagnostics go
# to stderr as usual).
exes=$(cargo test -p molecule-e2e --no-run --message-format=json-render-diagnostics "${tests[@]}" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
')
declare -A exe=()
while read -r name path; do exe[$name]=$path; done <<<"$exes"
[ ${#exe[@]} -eq $((${#tests[@]} / 2)) ] || { echo "e2e: built ${#exe[@]} of $((${#tests[@]} / 2)) scenario binaries" >&2; exit 1; }

# The order: ALONE, then LONGEST, then the rest by name.
first=$(echo $ALONE $LONGEST)
order=()
for n in $first; do [ -n "${exe[$n]:-}" ] && order+=("$n"); done
for n in $(printf '%s\n' "${!exe[@]}" | sort); do
  case " $first " in *" $n "*) ;; *) order+=("$n") ;; esac
done

source tests/e2e/testenv/world.sh
rm -rf "$LOGS" && mkdir -p "$LOGS"
declare -A pid_name=() started=()
failed=()

# finish PID RC: print one binary's whole output at once (never interleaved) and its verdict.
finish() {
  local name=${pid_name[$1]}
  unset "pid_name[$1]"
  echo "=== e2e: $name: $([ "$2" -eq 0 ] && echo ok || echo "FAILED (exit $2)") in $((SECONDS - ${started[$name]})) s"
  cat "$LOGS/$name.log"
  [ "$2" -eq 0 ] || failed+=("$name")
}

# wait_one: wait for any running binary and report it.
wait_one() {
  local done_pid rc=0
  wait -n -p done_pid "${!pid_name[@]}" || rc=$?
  finish "$done_pid" "$rc"
}

start=$SECONDS
for name in "${order[@]}"; do
  alone=false
  case " $ALONE " in *" $name "*) alone=true ;; esac
  # An ALONE binary waits for the world to be quiet; anything else waits for a free slot.
  while [ ${#pid_name[@]} -gt 0 ] && { $alone || [ ${#pid_name[@]} -ge "$JOBS" ]; }; do wait_one; done
  started[$name]=$SECONDS
  # cargo runs a test binary in its package's directory with CARGO_MANIFEST_DIR set: so do we.
  (cd tests/e2e && CARGO_MANIFEST_DIR=$PWD exec "${exe[$name]}" --test-threads=4) >"$LOGS/$name.log" 2>&1 &
  pid_name[$!]=$name
  if $alone; then wait_one; fi
done
while [ ${#pid_name[@]} -gt 0 ]; do wait_one; done

echo "e2e: ${#order[@]} scenario binaries in $((SECONDS - start)) s, $JOBS at a time; logs in $LOGS"
# Every failure is listed (the --no-fail-fast of a cargo test run).
if [ ${#failed[@]} -gt 0 ]; then
  echo "e2e: FAILED: ${failed[*]}" >&2
  exit 1
fi
