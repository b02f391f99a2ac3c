"""The book's experiments, one module per chapter, on one kit shared by all of them (latency, ...).

The chapters sit above the engine: they may import anything below them, and nothing below imports them
(tests/test_layering.py).
"""
