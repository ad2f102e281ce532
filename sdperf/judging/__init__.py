"""Deciding from measurements: statistics, verdicts, proof that settings took effect, image comparison."""
