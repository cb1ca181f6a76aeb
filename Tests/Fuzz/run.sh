#!/bin/bash
# Runs one harness of the libFuzzer build for RUNS executions or SECONDS,
# whichever ends first, in processes of at most CHUNK executions each: the
# config harness's dependency TOMLKit leaks a little on every parse (see
# lsan.supp), which one process running millions of inputs would pile up
# until it ran out of memory. Leaks are checked at the end of each process.
# Usage: run.sh HARNESS SECONDS RUNS CHUNK
set -euo pipefail
target=$1 seconds=$2 runs=$3 chunk=$4
binary=${FUZZ_BINARY:-.build/fuzz/release/sixgate-fuzz}
corpus=.build/fuzz/corpus/$target
mkdir -p "$corpus"
executed=0 start=$SECONDS
while (( executed < runs )); do
    left=$(( seconds - (SECONDS - start) ))
    (( left > 0 )) || break
    n=$(( runs - executed < chunk ? runs - executed : chunk ))
    if ! out=$(LSAN_OPTIONS=suppressions=Tests/Fuzz/lsan.supp SIXGATE_FUZZ=$target $binary -max_total_time=$left -runs=$n \
            -print_final_stats=1 -artifact_prefix=Tests/Fuzz/Corpus/$target/crash- "$corpus" Tests/Fuzz/Corpus/$target 2>&1); then
        grep -E '^(==[0-9]+==|SUMMARY|artifact_prefix|Direct leak|    #)' <<<"$out" | head -60
        echo "$target: a finding after $executed executions" >&2
        exit 1
    fi
    executed=$(( executed + $(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$out") ))
done
echo "$target: $executed executions in $(( SECONDS - start )) s, no crash, leak or sanitizer finding"
