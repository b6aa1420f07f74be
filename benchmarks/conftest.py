"""Benchmarks' pytest settings.

A timed run (``--benchmark-only``) repeats every case (warm-up and rounds) and builds the module's models
inside its first test, so on a shared machine one test can run past the suite's per-test limit
(``timeout = 900`` in pyproject.toml): ``bench_hpsv2.py::test_official_list`` took about 14 minutes at load
~10 on 2 cores and failed with pytest-timeout's "Timeout >900.0s" at load ~20. Timed runs get
``TIMED_RUN_TIMEOUT_S`` per test instead; the CI smoke run (``--benchmark-disable``, one round each) keeps
the suite's limit.

pyproject.toml's ``addopts`` carry ``--dist loadfile`` for the suite's ``-n auto`` runs; pytest-benchmark
takes any ``--dist`` for xdist and then refuses ``--benchmark-only``. Without ``-n`` no xdist runs, so
there ``--dist`` is set back to ``no`` and the documented command works as written.
"""

from __future__ import annotations

import pytest

TIMED_RUN_TIMEOUT_S = 4 * 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_disable"):
        return
    for item in items:
        item.add_marker(pytest.mark.timeout(TIMED_RUN_TIMEOUT_S))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("numprocesses", None) and config.getoption("dist", "no") != "no":
        config.option.dist = "no"
