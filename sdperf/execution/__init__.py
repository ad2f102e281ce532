"""Running cases in worker processes: case settings, the process handle, opening, warming and rotating workers; no pytest."""
