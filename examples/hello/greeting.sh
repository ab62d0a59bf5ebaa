#!/bin/sh
cat /hello.txt
echo "running as $(id -un) in $(pwd)"
