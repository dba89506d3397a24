#!/usr/bin/env bash
# A/B on one machine: two servers (two checkouts, or two settings) on loopback, measured in
# interleaved rounds; prints each round's req/s and the server's CPU time per request.
# CPU per request (utime + stime of the server process and its workers, from /proc) moves
# far less than req/s when something else shares the machine.
#
#   bench/ab.sh PORT_A PID_A PORT_B PID_B [SCRIPT] [ROUNDS] [IDS_FILE] [TOKENS_FILE]
#
# PID_x: the `rawpost serve` process (granian's main), whose children are the workers.
# SCRIPT: a bench/*.lua name (default user_by_id); IDS_FILE: from `rawpost seed`;
# TOKENS_FILE: bearer tokens, one a line, for create_post (`rawpost token ID` prints one).
set -euo pipefail
cd "$(dirname "$0")/.."
port_a=$1 pid_a=$2 port_b=$3 pid_b=$4
script=${5:-user_by_id} rounds=${6:-8} ids=${7:-bench/sample-ids.json} tokens=${8:-}

cpu_ticks() {  # utime + stime of a process and its children, in clock ticks
  local total=0 p f
  for p in "$1" $(pgrep -P "$1"); do
    read -r -a f <"/proc/$p/stat"
    total=$((total + f[13] + f[14]))
  done
  echo "$total"
}

hz=$(getconf CLK_TCK)
echo "round variant req/s requests cpu_us_per_request"
for round in $(seq "$rounds"); do
  for variant in A B; do
    if [ "$variant" = A ]; then port=$port_a pid=$pid_a; else port=$port_b pid=$pid_b; fi
    url="http://127.0.0.1:$port"
    wrk -t2 -c64 -d2s -s "bench/$script.lua" "$url" -- "$ids" "w$round" $tokens >/dev/null 2>&1
    before=$(cpu_ticks "$pid")
    out=$(wrk -t2 -c64 -d8s -s "bench/$script.lua" "$url" -- "$ids" "r$round" $tokens 2>&1)
    after=$(cpu_ticks "$pid")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    echo "$round $variant $rps $requests $(( (after - before) * 1000000 / hz / requests ))"
  done
done
