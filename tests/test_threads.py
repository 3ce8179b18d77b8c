"""``set_threads`` (``--threads``) limits NumPy/SciPy's BLAS pools as well as torch's."""
from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from trainlab.core.environment import set_threads


def test_set_threads_limits_torch_and_the_blas_pools() -> None:
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # the BLAS library is loaded
    before_torch = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores every pool's own setting on exit
        set_threads(1)
        pools = threadpool_info()
        assert pools and all(pool["num_threads"] == 1 for pool in pools)
        assert torch.get_num_threads() == 1
    torch.set_num_threads(before_torch)
