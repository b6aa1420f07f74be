"""Parity tests against official packages: skip cleanly when the ``parity`` dependency group is absent.

``ensure_hpsv2_vocab`` (from ``tests/parity/official.py``, shared with ``benchmarks/bench_hpsv2.py``)
installs the BPE vocabulary file that the hpsv2 1.2.0 wheel lacks; it runs here, at collection, before
any test module imports ``hpsv2``.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.parity.official import ensure_hpsv2_vocab

__all__ = ["ensure_hpsv2_vocab"]

HAS_HPSV2 = importlib.util.find_spec("hpsv2") is not None

if HAS_HPSV2:
    ensure_hpsv2_vocab()


@pytest.fixture(scope="session")
def hpsv2_available() -> None:
    if not HAS_HPSV2:
        pytest.skip("the official hpsv2 package is not installed (uv dependency group 'parity')")
