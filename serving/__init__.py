"""The BentoML serving layer: a thin service (service.py) over plain, unit-tested modules."""
