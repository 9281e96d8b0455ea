#!/bin/bash
# Description: what scripts/demo shows: the guest's kernel, ublk_drv, and ublkd's view of it.
source "$(dirname "$0")/lib.sh"

step "guest kernel"
uname -r
step "ublk driver"
expect_module ublk_drv
expect_char_device /dev/ublk-control
ls -l /dev/ublk-control
step "ublkd features (GET_FEATURES)"
ublkd features
pass
