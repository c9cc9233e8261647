#!/bin/bash
# TinyImageNet two-process run: $1 = name, $2 = relu, rest = client options
set -u
B=/work/meas/bin10; M='resnet18(input=64,classes=200)'; D=/work/meas/mem
name=$1; relu=$2; shift 2
rm -rf /work/meas/tin/store
/usr/bin/time -v -o server-$name.time $B/pi-server --model "$M" --weights $D/w.safetensors --listen 127.0.0.1:0 --tls $D/keys --relu gc,ot > server-$name.log 2>&1 &
spid=$!
for i in $(seq 1 600); do grep -q "listening on" server-$name.log && break; sleep 0.5; done
addr=$(grep -o "listening on [0-9.:]*" server-$name.log | awk '{print $3}')
/usr/bin/time -v -o client-$name.time $B/pi-client --connect $addr --tls $D/keys/client-1 --input $D/x.npy --relu $relu --json "$@" > client-$name.json 2> client-$name.err
echo "client $name rc=$?"
pkill -INT -x pi-server; wait $spid
