#!/bin/sh
# A plugin whose perfdata breaks the grammar in every way at once, among good fields.
echo "MESSY OK - some good, some bad | good=1;2;3;0;10 junk 'unclosed=4 =5 novalue= bad=abc load=0,75 range=3;x:y;@5:1"
echo "long text line"
echo "more long text | tail=7s;;;; extra=1;2;3;4;5;6"
exit 0
