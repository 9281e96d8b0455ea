#!/bin/bash
# Description: deliberately broken: a guest test that never ends (run with a short --timeout). The
# harness must kill it at its deadline, fail it, and go on with the next test in the boot.
echo "hanging on purpose"
sleep 100000
