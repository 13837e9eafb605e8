"""Benchmarks: ``python -m bench NAME`` runs ``bench/NAME.py``'s ``main(argv)`` (``bench/__main__.py``)."""
