#!/bin/sh
# Prints a line, then kills itself with the signal $1 (e.g. SEGV).
echo "about to die"
kill -"$1" $$
