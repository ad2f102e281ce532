"""Correctness per profile and recipe: a dependency upgrade that changes the images is
caught as surely as one that slows them down."""


def test_determinism(sdperf_check):
    """A fixed seed gives the same image twice in one worker, in a fresh worker, and as the golden."""
    sdperf_check.determinism()


def test_fidelity(sdperf_check):
    """The recipe's image stays within its promise against the profile's control image (fp32 on CPUs)."""
    sdperf_check.fidelity()
