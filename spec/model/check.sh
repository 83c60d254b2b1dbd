#!/usr/bin/env bash
# Model-checks spec/model/xa-protocol.pml and spec/model/scheme-race.pml with SPIN: the correct protocol must verify with no error, and
# every mutation (a deliberately broken protocol) must be caught with an assertion violation.
# Prints one line per run; exits non-zero if the correct model fails or a mutation is not caught.
# Works from any directory; build artefacts go to a temporary directory that is removed afterwards.
# Needs spin and a C compiler (cc/gcc).  Environment: KEEP_TRAILS=dir writes each error trail there (replayed
# with `spin -t`: one line per protocol event); FULL=1 also runs the fine-grained model (-DFINE_GRAIN, every
# round trip a separate step: ~40 million states, 2.5 GB, 2-4 minutes), which CI skips.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model="$here/xa-protocol.pml"
command -v spin >/dev/null 2>&1 || { echo "check.sh: spin is not installed" >&2; exit 2; }
cc="${CC:-$(command -v gcc || command -v cc)}"
[ -n "$cc" ] || { echo "check.sh: no C compiler (gcc/cc)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/xa-model.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# name | expected (pass/fail) | spin -D flags | what it is
runs=(
  "correct-item|pass||the protocol, item key: 2 writers, 2 readers, sweeper, eviction, crashes"
  "correct-item-2reads|pass|-DNREADS=2|the protocol, item key, two reads per reader"
  "correct-region|pass|-DREGION|the protocol, region key + cached query result"
  "NO_LEASE|fail|-DNO_LEASE|mutation: fill with a plain set instead of cas on the lease"
  "NO_CAS_PROMOTE|fail|-DNO_CAS_PROMOTE|mutation: promote writes its value with a plain set"
  "NO_LOCK|fail|-DNO_LOCK|mutation: prepare takes no lock"
  "NO_CONCURRENT_FLAG|fail|-DNO_CONCURRENT_FLAG|mutation: last holder of a shared lock writes its value"
  "NO_REGION_LOCK|fail|-DREGION -DNO_REGION_LOCK|mutation: prepare does not lock the region key"
  "correct-write-through|pass|-DREGION -DWRITE_THROUGH|write-through: a row promoted with its region generation, racing a region-wide writer"
  "WT_TAG_AT_PROMOTE|fail|-DREGION -DWRITE_THROUGH -DWT_TAG_AT_PROMOTE|mutation: written-through value tagged with the generation read after COMMIT"
  "known-limit|fail|-DNO_TTL_ASSUMPTION|documented known limit: lock dropped before COMMIT (expected trail)"
  "correct-scheme|pass|-DSCHEME|scheme-race.pml: a conjunction scheme appearing while two writers run"
  "NO_INFLIGHT_CHECK|fail|-DSCHEME -DNO_INFLIGHT_CHECK|mutation: a scheme established without waiting for writers in flight"
  "READ_BEFORE_JOIN|fail|-DSCHEME -DREAD_BEFORE_JOIN|mutation: writers read the scheme set before joining the in-flight region"
  "NO_OLD_VALUE|fail|-DSCHEME -DNO_OLD_VALUE|mutation: writers renew the conjunction of their new value only"
)
if [ "${FULL:-}" = "1" ]; then
  runs+=("correct-fine-grain|pass|-DFINE_GRAIN|the protocol, item key, every round trip a separate step")
fi

# One verification: spin -a, compile pan, run it exhaustively; writes "<status> <states> <seconds>".
verify() {
  local name="$1" flags="$2" dir="$work/$1"
  mkdir -p "$dir" && cd "$dir" || return 1
  # -DSCHEME selects the model of a conjunction scheme appearing concurrently with writes.
  if [[ "$flags" == *-DSCHEME* ]]; then cp "$here/scheme-race.pml" model.pml; else cp "$model" model.pml; fi
  # shellcheck disable=SC2086
  if ! spin -a $flags model.pml >spin.out 2>&1; then echo "spin-error 0 0"; return 0; fi
  # -DSAFETY: safety properties only (assertions, end states); -DCOLLAPSE: compressed state storage.
  if ! "$cc" -O2 -w -DSAFETY -DCOLLAPSE -DVECTORSZ=2048 -o pan pan.c >cc.out 2>&1; then echo "cc-error 0 0"; return 0; fi
  local t0 t1
  t0=$(date +%s.%N)
  # -m: search depth bound (far above the model's depth, which pan reports); -n: no unreached-code report.
  ./pan -m100000 -n >pan.out 2>&1
  t1=$(date +%s.%N)
  local errors states secs
  errors=$(sed -n 's/.*errors: *\([0-9]*\).*/\1/p' pan.out | head -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | head -1)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if grep -q "error: max search depth too small\|aborted\|out of memory" pan.out; then echo "incomplete ${states:-0} $secs"; return 0; fi
  if [ "${errors:-x}" = "0" ]; then echo "verified ${states:-0} $secs"; return 0; fi
  if [ -n "${errors:-}" ] && [ "$errors" != "0" ]; then
    if [ -n "${KEEP_TRAILS:-}" ]; then
      mkdir -p "$KEEP_TRAILS"
      # shellcheck disable=SC2086
      spin -t $flags model.pml 2>&1 | sed -n '/./p' | sed -n '1,/trail ends/p' | sed 's/^[[:space:]]*//; s/[[:space:]][[:space:]]*/ /g' >"$KEEP_TRAILS/$name.trail.txt" || true
    fi
    echo "violation ${states:-0} $secs $(grep -m1 'assertion violated' pan.out | sed 's/^pan:[0-9]*: *//')"
    return 0
  fi
  echo "unknown ${states:-0} $secs"
}

# Run the verifications two at a time (the machine this is sized for has 2 cores), the longest first (by their
# states above: write-through ~80 s, region ~27 s, scheme ~16 s, the rest seconds), so the short ones fill the other
# core while the longest runs: in pairs, each pair waiting for its slower half, the whole took ~150 s instead of ~85.
longest_first=()
for heavy in correct-write-through correct-region correct-scheme correct-fine-grain; do
  for i in "${!runs[@]}"; do [ "${runs[$i]%%|*}" = "$heavy" ] && longest_first+=("$i"); done
done
for i in "${!runs[@]}"; do [[ " ${longest_first[*]} " == *" $i "* ]] || longest_first+=("$i"); done
start=$(date +%s)
running=0
for i in "${longest_first[@]}"; do
  IFS='|' read -r name _ flags _ <<<"${runs[$i]}"
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
  ( verify "$name" "$flags" >"$work/result.$i" ) &
  running=$((running + 1))
done
wait

failed=0
for i in "${!runs[@]}"; do
  IFS='|' read -r name expected flags what <<<"${runs[$i]}"
  read -r status states secs detail <"$work/result.$i" || status="no-result"
  case "$expected/$status" in
    pass/verified) verdict="OK     verified, no error" ;;
    fail/violation) verdict="OK     caught: ${detail:-assertion violated}" ;;
    pass/violation) verdict="FAIL   the correct model has an error: ${detail:-}"; failed=1 ;;
    fail/verified) verdict="FAIL   mutation NOT caught"; failed=1 ;;
    *) verdict="FAIL   $status"; failed=1 ;;
  esac
  printf '%-20s %-26s %10s states %6ss  %s  [%s]\n' "$name" "${flags:-(none)}" "${states:-?}" "${secs:-?}" "$verdict" "$what"
done
echo "total $(( $(date +%s) - start ))s: $([ $failed -eq 0 ] && echo 'all as expected' || echo 'FAILURES')"
exit $failed
