"""Feature layer of AITM: Feast sources, retrieval, online lookup and data validation.

Nothing heavy is imported here: feast and great_expectations load only in the modules that
need them, so `python -m features --help` stays fast.
"""
