"""``python -m randomcnn``: the same as the ``randomcnn`` console command."""
import sys

from randomcnn.cli import main

sys.exit(main())
