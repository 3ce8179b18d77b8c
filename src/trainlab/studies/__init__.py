"""Studies built on the whole library: the dynamic-loss dynamics of Ruiz-García et al. (2021) on the spiral
(:mod:`.dynamics`) and the curvature report of a saved run (:mod:`.curvature`)."""
