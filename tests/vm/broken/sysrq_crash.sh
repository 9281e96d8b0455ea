#!/bin/bash
# Description: deliberately broken: the guest kernel crashes (sysrq c) mid-test. Its ctest entry
# must fail and show the console log path.
echo "crashing the guest kernel on purpose"
sync
echo c >/proc/sysrq-trigger
sleep 30
