#!/bin/sh
# Exits with the code $1 after printing $2 (for codes outside 0-3).
echo "$2"
exit "$1"
