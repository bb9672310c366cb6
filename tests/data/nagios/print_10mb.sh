#!/bin/sh
# A plugin with a 10 MiB output: a normal first line, then 10 MiB of "x", exit 1.
echo "BIG WARNING - far too much to say | size=10485760B;;;0"
head -c 10485760 /dev/zero | tr '\000' x
echo
exit 1
