#!/bin/sh
# A plugin that answers at once but leaves a grandchild that keeps stdout open
# (a forgotten "cmd &"); its pid goes to the file named by $1.
sleep 300 &
echo $! > "$1"
echo "OK - answered, but left a child behind | answered=1"
exit 0
