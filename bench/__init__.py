"""``make bench`` / ``python -m bench``: gh_assets measured against the original design and the
physical limits of this machine, in one process tree, with servers of its own.

Benchmarks (``--only NAME``): ``crawl``, ``writes``, ``frame``, ``memory``, ``orchestration``,
``limits``. Each comparison runs both sides in the same invocation, interleaved run by run, so the
ratios hold on a noisy machine. Every figure is the median of its runs with min-max beside it.
"""
