"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from actiondistill.parallel import torch_threads


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a whole module, restored afterwards for the other modules.

    The tests run tiny or batch-1 tensors, which gain nothing from a second thread; on a shared 2-core machine
    OpenMP workers contending with other processes made such steps up to ~50x slower. Eager vs onnxruntime
    comparisons also need both on the same number of cores. Use with `pytestmark = pytest.mark.usefixtures(...)`.
    """
    with torch_threads(1):
        yield
