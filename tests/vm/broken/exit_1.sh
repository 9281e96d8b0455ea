#!/bin/bash
# Description: deliberately broken: a guest test that exits 1. Its ctest entry must fail and
# show the console log path.
echo "this test fails on purpose"
exit 1
