"""The machine: detection from /proc and /sys, its state during a case, what it can run, and the doctor."""
