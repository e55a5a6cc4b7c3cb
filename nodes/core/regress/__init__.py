"""The regression harness: generation configs with their expected canonical parameters and hash
(``harness.py``), recomputed on demand so a change to a tier table or a family rule shows before it lands."""
