"""Environment variables native libraries read at process start: a case sets them in its
worker's environment (`sdperf.execution.cases`), and the worker reports each, set or not."""

# Read by native libraries at process start: a case's value must reach a fresh
# process, and a value inherited from the user's shell must not leak in unseen.
PROCESS_START_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOMP_CPU_AFFINITY",
    "OMP_PROC_BIND",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "LD_PRELOAD",
    "MALLOC_CONF",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
)
