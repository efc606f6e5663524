"""ctdna: ctDNA surveillance for ALK-positive non-small cell lung cancer.

Layers (imports point one way only):

* ``pipeline.io``: readers and writers; the only module that imports pysam.
* ``pipeline`` core (``knowledge``, ``kinetics``, ``rules``, ``store``, ``notify``,
  ``report``): pure, vectorised pandas/numpy logic. Never imports Prefect.
* ``flows``: thin Prefect wrappers around the core.
"""

__version__ = "0.1.0"
