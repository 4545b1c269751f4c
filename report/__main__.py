"""``python -m report``: the results comparison report (see ``report/build.py``)."""
import sys

from report.build import main

sys.exit(main())
