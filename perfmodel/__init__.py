"""specperf's performance model: specs, catalogs, latency composition and speculative-decoding maths.

Pure numpy (sympy only in perfmodel.specdec.symbolic); never imports torch or plotly.
"""
__version__ = "0.1.0"
