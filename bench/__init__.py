"""Measurements of the deployable application: run from the repository root with the dev venv.

- ``python -m bench.sizes DIR[=ARCH]...``: unzipped size of each function with its layers (``--check``: budget).
- ``python -m bench.coldstart DIR...``: import time of each handler from a ``sam build`` directory.
- ``python -m bench.warm``: in-process duration of each handler on the Iris sample, fresh and present.
- ``python -m bench.cost``: Lambda and Step Functions cost per run and per month from those figures.

``make bench`` runs all four (after ``make build-all``); ``make check-size`` runs the size check.
"""
