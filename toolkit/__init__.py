"""Helpers every layer uses: run records and atomic writes (``provenance``), device and precision
(``device``), Ray connection (``ray``). Importing this package imports nothing else; only
``toolkit.device`` imports torch."""
