#!/usr/bin/env bash
# tools/bench.sh - Pinwheel vs FreeRADIUS 3.2 (rlm_totp), side by side, in one run on this machine.
#
# Builds the release binaries, creates a private pinwheeld (temp dir, loopback
# ports chosen at run time, require_message_authenticator = true) with USERS
# provisioned users (`pinwheel-bench setup`), drives it with PAP
# Access-Requests carrying VALID, never-used one-time codes (radius_probe.py,
# Message-Authenticator in every request; its USERFILE runs `pinwheel-bench
# codes` before every run, because every Pinwheel code works once), records
# pinwheeld's peak memory (VmHWM) and stops it by PID. Optionally repeats the
# Pinwheel pass with the state directory on /dev/shm (fsync costs ~nothing
# there: a diagnostic, not a deployment). Then runs the shared
# freeradius_baseline.sh (FreeRADIUS 3.2 + rlm_totp, same probe, same specs)
# and prints both sets of RESULT lines and a table of ratios.
#
# Loopback only. Every server started here is stopped by its PID (the
# FreeRADIUS one by freeradius_baseline.sh itself). Every step is bounded by
# timeout(1) or the probe's --max-seconds.
#
# Knobs (defaults):
#   USERS=100000        Pinwheel users (bench0..), each with a device and a PIN
#   N_PROBE=20000       requests per probe run (both servers); RUNS x (N_PROBE+50) must stay
#                       under 65536: pinwheeld keeps every answer 30 s for retransmissions in a
#                       cache of at most 65,536 and DROPS new requests while it is full
#   CACHE_PAUSE=31      seconds to wait between Pinwheel specs, so that cache is empty again
#   SUSTAINED=0         1 = also one long 32x1 run of SUSTAINED_N=100000 requests that shows
#                       the cache limit (about 65,536 answers per 30 s) instead of hiding it
#   RUNS=3              runs per spec; RESULT lines are medians
#   PROBE_SPECS="1x1 32x1 64x1"  concurrency x client processes (both servers)
#   SHM_DIAG=1          also run the Pinwheel pass with the state dir on /dev/shm
#   FREERADIUS=1        0 = skip the FreeRADIUS baseline
#   FR_MODES="totp pap" baseline modes; pap adds the Message-Authenticator cost rows
#   FR_USERS=$USERS     users in FreeRADIUS's users file (max 200000)
#   STATE_PARENT=/tmp   where the Pinwheel temp dir (state, logs) goes
#   SHARED_BENCH=       folder with radius_probe.py and freeradius_baseline.sh
#                       (default: ../shared/bench beside the checkout, else /work/shared/bench)
#   OUT=target/bench/DATE  where the full output, logs and RESULT lines are kept
#   QUIET_PSI=10        before each measured spec wait (up to QUIET_MAX=180 s) until CPU pressure
#                       (/proc/pressure/cpu "some" avg10, in %) is below this: another job on a
#                       2-core machine moves every figure. 100 = do not wait
#   PERF=0              1 = perf record pinwheeld during its 32-in-flight runs, print top symbols
#   KEEP=0              1 = keep the Pinwheel temp dir
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

USERS=${USERS:-100000}
N_PROBE=${N_PROBE:-20000}
CACHE_PAUSE=${CACHE_PAUSE:-31}
SUSTAINED=${SUSTAINED:-0}
SUSTAINED_N=${SUSTAINED_N:-100000}
RUNS=${RUNS:-3}
PROBE_SPECS=${PROBE_SPECS:-"1x1 32x1 64x1"}
SHM_DIAG=${SHM_DIAG:-1}
FREERADIUS=${FREERADIUS:-1}
FR_MODES=${FR_MODES:-"totp pap"}
FR_USERS=${FR_USERS:-$USERS}
STATE_PARENT=${STATE_PARENT:-${TMPDIR:-/tmp}}
PERF=${PERF:-0}
QUIET_PSI=${QUIET_PSI:-10}
QUIET_MAX=${QUIET_MAX:-180}
KEEP=${KEEP:-0}
WARMUP=50
SECRET=testing123
OUT=${OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}

for v in USERS N_PROBE RUNS FR_USERS CACHE_PAUSE SUSTAINED_N; do
    case "${!v}" in ''|*[!0-9]*) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
[ "$FR_USERS" -le 200000 ] || FR_USERS=200000
REPLY_CACHE_MAX=65536   # daemon/src/radius/server.rs REPLY_CACHE_MAX (answers kept REPLY_CACHE_TTL = 30 s)

if [ -z "${SHARED_BENCH:-}" ]; then
    for d in "$ROOT/../shared/bench" /work/shared/bench; do
        if [ -f "$d/radius_probe.py" ]; then SHARED_BENCH=$(cd "$d" && pwd); break; fi
    done
fi
[ -f "${SHARED_BENCH:-}/radius_probe.py" ] || { echo "radius_probe.py not found; set SHARED_BENCH" >&2; exit 1; }
PROBE="$SHARED_BENCH/radius_probe.py"

mkdir -p "$OUT"
exec > >(tee "$OUT/bench.log") 2>&1
T0=$(date +%s)
# Each step shows the load average and CPU pressure: other work on the machine skews every figure.
cpu_psi() { awk '/^some/ {sub("avg10=", "", $2); print $2}' /proc/pressure/cpu 2>/dev/null || echo 0; }
step() { printf '\n==> [%4ds] %s   (loadavg %s, cpu psi %s%%)\n' "$(( $(date +%s) - T0 ))" "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(cpu_psi)"; }
wait_quiet() {   # waits until CPU pressure < QUIET_PSI %, at most QUIET_MAX s
    [ -r /proc/pressure/cpu ] || return 0
    local waited=0
    while awk -v p="$(cpu_psi)" -v q="$QUIET_PSI" 'BEGIN {exit !(p >= q)}'; do
        if [ "$waited" -ge "$QUIET_MAX" ]; then
            echo "# WARNING: machine still busy after ${waited} s (cpu psi $(cpu_psi)%): measuring anyway"; return 0
        fi
        sleep 5; waited=$((waited + 5))
    done
    [ "$waited" = 0 ] || echo "# waited ${waited} s for other work on the machine to calm down (cpu psi $(cpu_psi)%)"
}

WORKDIRS=()
PWPID=""
POLLPID=""
PERFPID=""
stop_pid() {   # stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "# pid $pid did not stop in 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$PERFPID"
    stop_pid "$PWPID"
    if [ -n "$POLLPID" ]; then kill "$POLLPID" 2>/dev/null || true; fi
    if [ "$KEEP" != 1 ]; then
        for d in "${WORKDIRS[@]}"; do rm -rf "$d"; done
    else
        for d in "${WORKDIRS[@]}"; do echo "# kept $d"; done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- machine
step "machine"
commit=none
if git rev-parse --short HEAD >/dev/null 2>&1; then
    commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')
fi
echo "# date=$(date -u +%FT%TZ) commit=${PINWHEEL_COMMIT:-$commit}"
echo "# nproc=$(nproc) cpu='$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)' mem_total=$(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo) kernel=$(uname -r)"
src=$(findmnt -no SOURCE -T "$STATE_PARENT" 2>/dev/null | head -1)
blk=$(basename "$src")
echo "# state_parent=$STATE_PARENT fs='$(findmnt -no SOURCE,FSTYPE,OPTIONS -T "$STATE_PARENT" 2>/dev/null | head -1)'" \
     "rotational=$(cat "/sys/block/$blk/queue/rotational" 2>/dev/null || echo ?)" \
     "write_cache='$(cat "/sys/block/$blk/queue/write_cache" 2>/dev/null || echo ?)'"
echo "# USERS=$USERS N_PROBE=$N_PROBE RUNS=$RUNS PROBE_SPECS='$PROBE_SPECS' CACHE_PAUSE=$CACHE_PAUSE SHM_DIAG=$SHM_DIAG FREERADIUS=$FREERADIUS FR_USERS=$FR_USERS"
if [ $(( RUNS * (N_PROBE + WARMUP) )) -ge $REPLY_CACHE_MAX ]; then
    echo "# WARNING: RUNS x (N_PROBE + $WARMUP) >= $REPLY_CACHE_MAX: pinwheeld's reply cache fills within a spec and it"
    echo "#          drops requests (lost=, 2 s probe timeouts): the Pinwheel rows then measure that limit"
fi

# ---------------------------------------------------------------- build
step "cargo build --release --workspace"
timeout 1200 cargo build --release --workspace 2>&1 | tail -3
DAEMON_BIN=$ROOT/target/release/pinwheeld
BENCH_BIN=$ROOT/target/release/pinwheel-bench
[ -x "$DAEMON_BIN" ] && [ -x "$BENCH_BIN" ] || { echo "release binaries missing" >&2; exit 1; }

free_ports() {   # prints "UDP_PORT TCP_PORT", both free on 127.0.0.1 right now
    python3 - <<'PY'
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1])
PY
}

proc_mem() {     # proc_mem PID: "VmHWM=.. VmRSS=.. threads=.."
    awk '/^VmHWM/ {h=$2} /^VmRSS/ {r=$2} /^Threads/ {t=$2} END {printf "VmHWM_kB=%s VmRSS_kB=%s threads=%s", h, r, t}' "/proc/$1/status"
}

# pinwheel_pass LABEL PARENT: one complete Pinwheel measurement with the state dir under PARENT.
pinwheel_pass() {
    local label=$1 parent=$2
    local dir rport hport cfg
    dir=$(mktemp -d "$parent/pwbench.XXXXXX")
    WORKDIRS+=("$dir")
    read -r rport hport < <(free_ports)
    cfg=$dir/pinwheel.toml
    cat > "$cfg" <<EOF
# Private benchmark instance (tools/bench.sh). Loopback only.
[server]
state_dir = "$dir/state"
runtime_dir = "$dir/run"
public_url = "http://127.0.0.1:$hport"

[http]
listen = "127.0.0.1:$hport"

[radius]
listen = "127.0.0.1:$rport"

[[radius.client]]
name = "bench"
address = "127.0.0.1/32"
secret = "$SECRET"
require_message_authenticator = true

[[transport]]
name = "spool"
plugin = "spool"
config = { folder = "$dir/spool" }

[policy]
# Every benchmark code is valid; the replay sanity check adds one failure.
max_failures = 1000000

[audit]
# Rows still go to the database and the daemon log; no syslog socket here.
syslog = false
EOF
    step "$label: pinwheel-bench setup --users $USERS (state $dir/state, $(findmnt -no FSTYPE -T "$dir"))"
    timeout 900 "$BENCH_BIN" setup --config "$cfg" --users "$USERS" 2>&1
    echo "# database $(du -h "$dir/state/pinwheel.db" | cut -f1)"

    step "$label: start pinwheeld (radius 127.0.0.1:$rport)"
    "$DAEMON_BIN" --config "$cfg" > "$dir/pinwheeld.log" 2>&1 &
    PWPID=$!
    for _ in $(seq 1 100); do
        grep -q ' serving ' "$dir/pinwheeld.log" 2>/dev/null && break
        kill -0 "$PWPID" 2>/dev/null || break
        sleep 0.1
    done
    grep -q ' serving ' "$dir/pinwheeld.log" || { echo "pinwheeld did not start:" >&2; tail -20 "$dir/pinwheeld.log" >&2; exit 1; }
    echo "# pinwheeld pid $PWPID idle: $(proc_mem "$PWPID")"

    # Sanity: one fresh code is accepted, the same code again is rejected.
    "$BENCH_BIN" codes --config "$cfg" --count 1 > "$dir/one.txt"
    if ! python3 "$PROBE" 127.0.0.1 "$rport" "$SECRET" "$dir/one.txt" --n 1 --warmup 0 --msg-auth --timeout 5 \
        --label sanity-fresh > "$dir/sanity.txt"; then
        echo "SANITY FAILURE: a fresh code was not accepted" >&2; cat "$dir/sanity.txt" >&2; exit 1
    fi
    if python3 "$PROBE" 127.0.0.1 "$rport" "$SECRET" "$dir/one.txt" --n 1 --warmup 0 --msg-auth --timeout 5 \
        --label sanity-replay > "$dir/sanity.txt" || ! grep -q 'reject=1' "$dir/sanity.txt"; then
        echo "SANITY FAILURE: a replayed code was not rejected" >&2; cat "$dir/sanity.txt" >&2; exit 1
    fi
    echo "# sanity: fresh code accepted, the same code replayed rejected"

    if [ "$PERF" = 1 ] && [ "$label" = pinwheel ] && command -v perf >/dev/null; then
        perf record -F 999 -g -p "$PWPID" -o "$OUT/pinwheeld.perf.data" > "$OUT/perf-record.log" 2>&1 &
        PERFPID=$!
    fi
    local spec conc procs each count uf first=1 n runs
    local specs=$PROBE_SPECS
    [ "$SUSTAINED" = 1 ] && specs="$specs sustained"
    for spec in $specs; do
        n=$N_PROBE; runs=$RUNS
        if [ "$spec" = sustained ]; then spec=32x1; n=$SUSTAINED_N; runs=1; fi
        if [ "$first" != 1 ] && [ "$CACHE_PAUSE" -gt 0 ]; then
            echo "# waiting ${CACHE_PAUSE} s: pinwheeld's reply cache (answers kept 30 s, at most $REPLY_CACHE_MAX) empties"
            sleep "$CACHE_PAUSE"
        fi
        first=0
        wait_quiet
        conc=${spec%x*}; procs=${spec#*x}
        each=$(( (n + procs - 1) / procs ))
        if [ "$procs" -gt 1 ]; then
            # radius_probe.py starts process i at line i*7919: give every slice its own lines.
            if [ $((each + WARMUP)) -gt 7919 ]; then
                echo "# skip $spec: with procs > 1, N_PROBE/procs + $WARMUP must be <= 7919 (fresh codes only)"; continue
            fi
            count=$(( 7919 * (procs - 1) + each + WARMUP ))
        else
            count=$(( n + WARMUP ))
        fi
        uf=$dir/codes-$spec.sh
        printf '#!/bin/sh\nexec "%s" codes --config "%s" --count %d\n' "$BENCH_BIN" "$cfg" "$count" > "$uf"
        chmod +x "$uf"
        local plabel=$label-probe
        [ "$n" = "$N_PROBE" ] || plabel=$label-sustained-probe
        step "$label: radius_probe.py --concurrency $conc --procs $procs --n $n --runs $runs --msg-auth"
        timeout $(( runs * 200 + 60 )) python3 "$PROBE" 127.0.0.1 "$rport" "$SECRET" "$uf" --n "$n" \
            --concurrency "$conc" --procs "$procs" --runs "$runs" --server-pid "$PWPID" --msg-auth \
            --max-seconds 180 --label "$plabel" | tee -a "$OUT/results.txt" || echo "# probe exit status $? (not every request accepted)"
        echo "# after $spec: $(proc_mem "$PWPID") cpu_psi=$(cpu_psi)%"
    done
    if [ -n "$PERFPID" ]; then
        stop_pid "$PERFPID"; PERFPID=""
        step "perf: top symbols of pinwheeld (self time, all probe runs)"
        perf report -i "$OUT/pinwheeld.perf.data" --no-children --sort dso,sym -g none 2>/dev/null \
            | grep -v '^#' | grep . | head -30 || true
    fi
    local mem spent
    mem=$(proc_mem "$PWPID")
    spent=$(grep -c 'Access-Accept' "$dir/pinwheeld.log" || true)
    echo "MEMORY label=$label users=$USERS $mem db_kB=$(du -k "$dir/state/pinwheel.db" | cut -f1) accepts_logged=$spent" | tee -a "$OUT/results.txt"
    echo "# pinwheeld dropped $(grep -c 'reply cache full' "$dir/pinwheeld.log" || true) requests as 'reply cache full' (log lines, rate-limited to 10/s)"
    cp "$dir/pinwheeld.log" "$OUT/$label-pinwheeld.log" 2>/dev/null || true
    step "$label: stop pinwheeld (SIGTERM to $PWPID)"
    stop_pid "$PWPID"; PWPID=""
    tail -1 "$dir/pinwheeld.log"
}

pinwheel_pass pinwheel "$STATE_PARENT"
if [ "$SHM_DIAG" = 1 ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    pinwheel_pass pinwheel-shm /dev/shm
fi

# ---------------------------------------------------------------- FreeRADIUS
if [ "$FREERADIUS" = 1 ]; then
    step "FreeRADIUS 3.2 + rlm_totp: $SHARED_BENCH/freeradius_baseline.sh (MODES='$FR_MODES' USERS=$FR_USERS)"
    # Peak memory of the baseline's own server (found by its scratch dir; read only).
    (
        best=0; rss=0
        while :; do
            for p in $(pgrep -x freeradius 2>/dev/null); do
                if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q 'frbench'; then
                    h=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
                    if [ "${h:-0}" -gt "$best" ]; then
                        best=$h; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
                        echo "$best $rss" > "$OUT/freeradius-mem.txt"
                    fi
                fi
            done
            sleep 1
        done
    ) &
    POLLPID=$!
    wait_quiet
    MODES="$FR_MODES" PROBE=1 PROBE_SPECS="$PROBE_SPECS" N_PROBE="$N_PROBE" RUNS="$RUNS" USERS="$FR_USERS" \
        N="$N_PROBE" N_SEQ=2000 PARALLEL=64 CLIENTS_LIST=1 MSGAUTH_CHECK=1 \
        timeout 1200 bash "$SHARED_BENCH/freeradius_baseline.sh" 2>&1 | tee "$OUT/freeradius.txt" \
        || echo "# freeradius_baseline.sh exit status $?"
    kill "$POLLPID" 2>/dev/null || true; POLLPID=""
    grep '^RESULT' "$OUT/freeradius.txt" >> "$OUT/results.txt" || true
    if [ -s "$OUT/freeradius-mem.txt" ]; then
        read -r h r < "$OUT/freeradius-mem.txt"
        echo "MEMORY label=freeradius users=$FR_USERS VmHWM_kB=$h VmRSS_kB=$r (polled once a second)" | tee -a "$OUT/results.txt"
    fi
fi

# ---------------------------------------------------------------- summary
step "summary (all RESULT and MEMORY lines in $OUT/results.txt)"
grep -E '^(RESULT|MEMORY)' "$OUT/results.txt" || true
python3 - "$OUT/results.txt" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    rows.append(kv)
def find(label, c, p):
    for r in rows:
        if r.get("label") == label and r.get("concurrency") == c and r.get("procs") == p:
            return r
    return None
def num(r, k):
    try:
        return float(r[k])
    except (KeyError, ValueError, TypeError):
        return float("nan")
specs = []
for r in rows:
    if r.get("label", "").startswith("pinwheel") and (r["concurrency"], r["procs"]) not in specs:
        specs.append((r["concurrency"], r["procs"]))
fr_label = "freeradius-totp-probe"
print()
print("Pinwheel (strings, Message-Authenticator, fresh code per request) vs FreeRADIUS 3.2 rlm_totp")
hdr = "%-10s %-6s | %9s %9s %7s | %8s %8s %6s | %8s %8s %6s | %8s %8s %6s | %7s"
print(hdr % ("pinwheel", "cxp", "pw rps", "fr rps", "ratio", "pw p50", "fr p50", "ratio",
             "pw p99", "fr p99", "ratio", "pw cpu", "fr cpu", "ratio", "pw lost"))
for label in ("pinwheel-probe", "pinwheel-shm-probe"):
    for c, p in specs:
        pw, fr = find(label, c, p), find(fr_label, c, p)
        if pw is None:
            continue
        def triple(k):
            a = num(pw, k)
            b = num(fr, k) if fr else float("nan")
            return a, b, (a / b if b == b and b else float("nan"))
        rps, p50, p99, cpu = triple("rps"), triple("p50_ms"), triple("p99_ms"), triple("server_cpu_us_per_req")
        print("%-10s %-6s | %9.0f %9.0f %7.2f | %8.3f %8.3f %6.2f | %8.3f %8.3f %6.2f | %8.1f %8.1f %6.2f | %7s" % (
            "/dev/shm" if "shm" in label else "disk", "%sx%s" % (c, p), *rps, *p50, *p99, *cpu, pw.get("lost", "?")))
print("(rps: requests/s; p50/p99: ms; cpu: server CPU us per request; ratio = Pinwheel / FreeRADIUS)")
pap, papm = find("freeradius-pap-probe", "32", "1"), find("freeradius-pap-msgauth-probe", "32", "1")
if pap and papm:
    print("FreeRADIUS totp rows are sent without Message-Authenticator (the baseline has no such totp row);")
    print("its cost on FreeRADIUS, pap 32x1 without -> with: rps %.0f -> %.0f, p50 %.3f -> %.3f ms, cpu %.1f -> %.1f us/req" % (
        num(pap, "rps"), num(papm, "rps"), num(pap, "p50_ms"), num(papm, "p50_ms"),
        num(pap, "server_cpu_us_per_req"), num(papm, "server_cpu_us_per_req")))
PY
echo "# total $(( $(date +%s) - T0 )) s; output in $OUT"
