"""``python -m backend ...`` — see backend/cli/."""
import sys

from backend.openmp import sleeping_waits

sleeping_waits()   # before anything imports torch (backend/openmp.py)

from backend.cli import main  # noqa: E402

sys.exit(main())
