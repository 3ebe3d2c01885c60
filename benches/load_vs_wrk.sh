#!/usr/bin/env bash
# seda load against wrk, side by side, on the same nginx.
#
# nginx runs one worker pinned to CPU 0 (its own config and prefix in a temporary directory,
# listening on 127.0.0.1:$PORT, answering `return 200`); each generator runs on CPU 1. Rounds
# are interleaved (wrk, seda closed, seda open, then again), and the medians are printed:
#
#   closed loop, 64 connections:  wrk -t1 -c64  vs  seda load --connections 64 --threads 1 --cpus 1
#   open loop at $RATE/s:         seda load --rate $RATE --connections 64 --threads 1 --cpus 1
#
# Targets (issue 4): seda >= 1.2x wrk's requests/s closed loop; open loop achieved rate within
# 1% of the target with send lag p99 <= 100 us. Each closed-loop run also reports the CPU time
# the generator process used per request (user + system, from /usr/bin/time): on a machine
# where the server's CPU is shared with other work, requests/s follows the server, and CPU per
# request is what says which generator does more with its core.
#
# Usage: benches/load_vs_wrk.sh [ROUNDS] [SECONDS]   (defaults 3 and 5; RATE, PORT from the env)
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
RATE=${RATE:-100000}
PORT=${PORT:-18480}

cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk
fi
NGINX=$(command -v nginx)

cargo build --release --quiet
SEDA=$PWD/target/release/seda

WORK=$(mktemp -d /tmp/seda-load-bench.XXXXXX)
cleanup() {
    if [[ -f $WORK/nginx.pid ]]; then
        kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
        sleep 0.2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 "ok\n"; }
    }
}
EOF
taskset -c 0 "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>/dev/null
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
URL="http://127.0.0.1:$PORT/"

json_field() { # FILE PATH.TO.FIELD
    python3 -c "import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split('.'): v=v[k]
print(v)" "$1" "$2"
}

cpu_us_per_request() { # TIME_FILE REQUESTS
    awk -v n="$2" '{printf "%.3f", ($1 + $2) * 1e6 / n}' "$1"
}

wrk_rates=()
wrk_cpu=()
closed_cpu=()
closed_rates=()
open_rates=()
open_lags=()
open_p99=()
for round in $(seq "$ROUNDS"); do
    out=$(/usr/bin/time -f '%U %S' -o "$WORK/wrk.time" taskset -c 1 wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "$URL")
    rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    wrk_rates+=("$rate")
    wrk_cpu+=("$(cpu_us_per_request "$WORK/wrk.time" "$requests")")

    /usr/bin/time -f '%U %S' -o "$WORK/seda.time" "$SEDA" load "$URL" --connections 64 --threads 1 --cpus 1 \
        -d "${SECONDS_PER_RUN}s" --json "$WORK/closed.json" >/dev/null
    closed_rates+=("$(json_field "$WORK/closed.json" achieved_rate)")
    closed_cpu+=("$(cpu_us_per_request "$WORK/seda.time" "$(json_field "$WORK/closed.json" responses)")")

    "$SEDA" load "$URL" --rate "$RATE" --connections 64 --threads 1 --cpus 1 -d "${SECONDS_PER_RUN}s" \
        --json "$WORK/open.json" >/dev/null
    open_rates+=("$(json_field "$WORK/open.json" achieved_rate)")
    open_lags+=("$(json_field "$WORK/open.json" send_lag_us.p99)")
    open_p99+=("$(json_field "$WORK/open.json" latency_us.corrected.p99)")

    printf 'round %d: wrk %.0f/s (%.2f us CPU/request) | seda closed %.0f/s (%.2f us CPU/request) | seda open %.0f/s of %d/s, send lag p99 %.1f us, corrected p99 %.1f us\n' \
        "$round" "$rate" "${wrk_cpu[-1]}" "${closed_rates[-1]}" "${closed_cpu[-1]}" "${open_rates[-1]}" "$RATE" \
        "${open_lags[-1]}" "${open_p99[-1]}"
done

python3 - "$RATE" "${wrk_rates[*]}" "${closed_rates[*]}" "${open_rates[*]}" "${open_lags[*]}" "${open_p99[*]}" \
    "${wrk_cpu[*]}" "${closed_cpu[*]}" <<'EOF'
import statistics, sys
rate = float(sys.argv[1])
wrk, closed, opened, lag, p99, wrk_cpu, seda_cpu = ([float(x) for x in a.split()] for a in sys.argv[2:9])
m = statistics.median
print()
print(f"medians of {len(wrk)} rounds")
print(f"closed loop, 64 connections: wrk {m(wrk):,.0f}/s, seda {m(closed):,.0f}/s: "
      f"{m(closed) / m(wrk):.2f}x (target >= 1.2x: {'met' if m(closed) / m(wrk) >= 1.2 else 'not met'})")
print(f"generator CPU per request, closed loop: wrk {m(wrk_cpu):.2f} us, seda {m(seda_cpu):.2f} us: "
      f"seda does {m(wrk_cpu) / m(seda_cpu):.2f}x the requests per CPU second")
off = abs(m(opened) - rate) / rate * 100
print(f"open loop at {rate:,.0f}/s: achieved {m(opened):,.0f}/s ({off:.2f}% off, target <= 1%: "
      f"{'met' if off <= 1 else 'not met'}), send lag p99 {m(lag):.1f} us (target <= 100 us: "
      f"{'met' if m(lag) <= 100 else 'not met'}), corrected p99 {m(p99):.1f} us")
EOF
