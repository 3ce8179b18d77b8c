"""Studies built on the whole library: the dynamic-loss sweeps of thesis 002 and the curvature report."""
