#!/usr/bin/env bash
# seda load against wrk, side by side, on the same nginx, with both of seda's I/O backends.
#
# nginx runs one worker pinned to CPU 0 (its own config and prefix in a temporary directory,
# answering `return 200` on 127.0.0.1:$PORT, and over TLS on $PORT+1 with a self-signed
# certificate this script makes with openssl); each generator runs on CPU 1. Rounds are
# interleaved (every shape of round 1, then of round 2, ...), and the medians are printed:
#
#   closed loop, 64 connections, http:// and https://:
#       wrk -t1 -c64   vs   seda load --io epoll   vs   seda load --io uring
#       (seda: --connections 64 --threads 1 --cpus 1)
#   open loop at $RATE/s, http://: seda load --rate $RATE --io epoll | uring, against nginx
#       (64 connections), and against seda's own server (configs/http_hello.json on CPU 0, on
#       $PORT+2), which answers that rate on one core only with pipelining: 1 connection,
#       --pipeline 64. nginx's one worker answers fewer than $RATE/s here, so only the second
#       says whether the generator keeps the schedule.
#
# The closed-loop figure is requests per generator CPU second: requests divided by the
# generator's user + system CPU time (/usr/bin/time). On a machine whose server CPU is shared
# with other work, requests/s follows the server; CPU per request says which generator does
# more with its core. Targets (issue 14): seda >= 1.5x wrk's requests per CPU second on
# http://, >= 1.0x on https://; open loop achieved within 1% with send lag p99 <= 50 us.
#
# Usage: benches/load_vs_wrk.sh [ROUNDS] [SECONDS]   (defaults 3 and 5; RATE, PORT from the env)
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
RATE=${RATE:-200000}
PORT=${PORT:-18480}

cd "$(dirname "$0")/.."

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || ! command -v openssl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk openssl
fi
NGINX=$(command -v nginx)

cargo build --release --quiet
SEDA=$PWD/target/release/seda

WORK=$(mktemp -d /tmp/seda-load-bench.XXXXXX)
cleanup() {
    if [[ -n ${SEDA_SERVER:-} ]]; then
        kill "$SEDA_SERVER" 2>/dev/null || true
        wait "$SEDA_SERVER" 2>/dev/null || true
    fi
    if [[ -f $WORK/nginx.pid ]]; then
        kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
        sleep 0.2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
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
    server {
        listen 127.0.0.1:$((PORT + 1)) ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location / { return 200 "ok\n"; }
    }
}
EOF
taskset -c 0 "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>"$WORK/nginx.err" || { cat "$WORK/nginx.err" >&2; exit 1; }
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
HTTP_URL="http://127.0.0.1:$PORT/"
SEDA_URL="http://127.0.0.1:$((PORT + 2))/"
taskset -c 0 "$SEDA" run configs/http_hello.json --listen "127.0.0.1:$((PORT + 2))" >"$WORK/seda-server.out" 2>&1 &
SEDA_SERVER=$!
for _ in $(seq 50); do
    curl -sf "$SEDA_URL" >/dev/null 2>&1 && break
    sleep 0.1
done
HTTPS_URL="https://127.0.0.1:$((PORT + 1))/"

json_field() { # FILE PATH.TO.FIELD
    python3 -c "import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split('.'): v=v[k]
print(v)" "$1" "$2"
}

# Requests per generator CPU second: REQUESTS / (user + system) from a /usr/bin/time file.
per_cpu_second() { # TIME_FILE REQUESTS
    awk -v n="$2" '{printf "%.0f", n / ($1 + $2)}' "$1"
}

# One line per run: PROTO MODE GENERATOR FIGURE FIGURE (closed: per CPU second, per second;
# open: achieved rate, send lag p99 in us).
RESULTS=$WORK/results.txt
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for proto in http https; do
        if [[ $proto == http ]]; then
            url=$HTTP_URL
            trust=()
        else
            url=$HTTPS_URL
            trust=(--cacert "$WORK/cert.pem")
        fi
        out=$(/usr/bin/time -f '%U %S' -o "$WORK/wrk.time" taskset -c 1 wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "$url")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        echo "$proto closed wrk $(per_cpu_second "$WORK/wrk.time" "$requests") $rate" >>"$RESULTS"
        for io in epoll uring; do
            /usr/bin/time -f '%U %S' -o "$WORK/seda.time" "$SEDA" load "$url" "${trust[@]}" --io "$io" \
                --connections 64 --threads 1 --cpus 1 -d "${SECONDS_PER_RUN}s" --json "$WORK/closed.json" >/dev/null
            responses=$(json_field "$WORK/closed.json" responses)
            rate=$(json_field "$WORK/closed.json" achieved_rate)
            echo "$proto closed seda-$io $(per_cpu_second "$WORK/seda.time" "$responses") $rate" >>"$RESULTS"
        done
    done
    for io in epoll uring; do
        "$SEDA" load "$HTTP_URL" --io "$io" --rate "$RATE" --connections 64 --threads 1 --cpus 1 \
            -d "${SECONDS_PER_RUN}s" --json "$WORK/open.json" >/dev/null
        achieved=$(json_field "$WORK/open.json" achieved_rate)
        echo "http open seda-$io $achieved $(json_field "$WORK/open.json" send_lag_us.p99)" >>"$RESULTS"
        "$SEDA" load "$SEDA_URL" --io "$io" --rate "$RATE" --connections 1 --pipeline 64 --threads 1 --cpus 1 \
            -d "${SECONDS_PER_RUN}s" --json "$WORK/open.json" >/dev/null
        achieved=$(json_field "$WORK/open.json" achieved_rate)
        echo "http open-seda seda-$io $achieved $(json_field "$WORK/open.json" send_lag_us.p99)" >>"$RESULTS"
    done
    echo "round $round:"
    tail -n 10 "$RESULTS" | sed 's/^/  /'
done

python3 - "$RATE" "$RESULTS" <<'PY'
import collections, statistics, sys
rate = float(sys.argv[1])
rows = collections.defaultdict(list)
for line in open(sys.argv[2]):
    proto, mode, who, a, b = line.split()
    rows[(proto, mode, who)].append((float(a), float(b)))
def m(key, i):
    return statistics.median(v[i] for v in rows[key])
print()
print(f"medians of {len(rows[('http', 'closed', 'wrk')])} rounds")
print()
print("| closed loop, 64 connections | wrk | seda-epoll | seda-uring | epoll / wrk | uring / wrk | target |")
print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
for proto, target in (("http", 1.5), ("https", 1.0)):
    w, e, u = (m((proto, "closed", who), 0) for who in ("wrk", "seda-epoll", "seda-uring"))
    verdict = "met" if max(e, u) / w >= target else "not met"
    print(f"| {proto}://, requests per CPU second | {w:,.0f} | {e:,.0f} | {u:,.0f} | {e / w:.2f}x | {u / w:.2f}x "
          f"| >= {target}x: {verdict} |")
    w, e, u = (m((proto, "closed", who), 1) for who in ("wrk", "seda-epoll", "seda-uring"))
    print(f"| {proto}://, requests/s | {w:,.0f} | {e:,.0f} | {u:,.0f} | {e / w:.2f}x | {u / w:.2f}x | |")
print()
print(f"| open loop at {rate:,.0f}/s, http:// | server | achieved | off | send lag p99 | target: within 1%, lag <= 50 us |")
print("| --- | --- | ---: | ---: | ---: | --- |")
for mode, server in (("open", "nginx, 64 connections"), ("open-seda", "seda, 1 connection, --pipeline 64")):
    for io in ("epoll", "uring"):
        achieved, lag = m(("http", mode, f"seda-{io}"), 0), m(("http", mode, f"seda-{io}"), 1)
        off = abs(achieved - rate) / rate * 100
        verdict = "met" if off <= 1 and lag <= 50 else "not met"
        print(f"| seda-{io} | {server} | {achieved:,.0f}/s | {off:.2f}% | {lag:.1f} us | {verdict} |")
PY
