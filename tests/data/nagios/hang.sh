#!/bin/sh
# A plugin that never finishes: it starts a grandchild, records the grandchild's pid in
# the file named by $1, says something, and waits forever.
sleep 300 &
echo $! > "$1"
echo "HANG - still thinking"
wait
