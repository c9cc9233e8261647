#!/bin/bash
# README, scaling study: resnet18(input=64,classes=200), two processes over loopback TLS,
# GC mode from disk and from memory, OT mode from memory and disk; peak RSS of each party.
# Usage: B=DIR_WITH_BINARIES D=WORK_DIR [REPEAT=N] docs/scaling/tinyimagenet/run.sh (binaries: pi-server, pi-client, pi-models)
set -u
B=$(cd "${B:-target/release}" && pwd); D=${D:-$PWD}; M='resnet18(input=64,classes=200)'
cd $D
[ -f w.safetensors ] || $B/pi-models init "$M" --seed 1 --out w.safetensors
[ -f x.npy ] || python3 - <<'PY'
import struct, random
random.seed(1)
shape=(3,64,64); n=3*64*64
hdr="{'descr': '<f4', 'fortran_order': False, 'shape': (3, 64, 64), }"
pad=64-((10+len(hdr)+1)%64)
hdr=hdr+' '*pad+'\n'
with open('x.npy','wb') as f:
    f.write(b'\x93NUMPY\x01\x00'+struct.pack('<H',len(hdr))+hdr.encode())
    f.write(struct.pack('<%df'%n,*[random.uniform(-1,1) for _ in range(n)]))
PY
[ -d keys ] || $B/pi-server keygen --out keys --clients 1 >/dev/null
$B/pi-models infer "$M" --weights w.safetensors --input x.npy --fixed --json > oracle.json
run() { # name relu [client options...]
  local name=$1 relu=$2; shift 2
  rm -rf store; 
  /usr/bin/time -v -o server-$name.time $B/pi-server --model "$M" --weights w.safetensors --listen 127.0.0.1:0 --tls keys --relu gc,ot > server-$name.log 2>&1 &
  local spid=$!
  for i in $(seq 1 600); do grep -q "listening on" server-$name.log && break; sleep 0.5; done
  local addr=$(grep -o "listening on [0-9.:]*" server-$name.log | awk '{print $3}')
  echo "$(date +%T) $name: server at $addr" >&2
  /usr/bin/time -v -o client-$name.time $B/pi-client --connect $addr --tls keys/client-1 --input x.npy --relu $relu --json "$@" > client-$name.json 2> client-$name.err
  echo "$(date +%T) $name: client rc=$?" >&2
  kill -INT $(pgrep -P $spid) $spid 2>/dev/null; wait $spid
  ls -la store 2>/dev/null | head -3
}
# REPEAT=N runs the four configurations N times, alternating, with -1..-N
# after each name (the evening's table: REPEAT=3); one pass by default.
REPEAT=${REPEAT:-1}
for k in $(seq 1 $REPEAT); do
  sfx=; [ "$REPEAT" -gt 1 ] && sfx=-$k
  run gc-disk$sfx gc --storage-dir $D/store
  run gc-mem$sfx gc
  run ot-mem$sfx ot
  run ot-disk$sfx ot --storage-dir $D/store
done
echo done >&2
