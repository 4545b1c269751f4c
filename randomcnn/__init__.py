"""The ``randomcnn`` console command: one entry point for every stage (see :mod:`randomcnn.cli`)."""
