"""Entry point for ``ray job submit -- python jobs/prepare.py ...`` (same flags as
``relext-prepare``); the job's driver joins the cluster through RAY_ADDRESS."""

import sys

from relext_ray.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
