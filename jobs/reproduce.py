"""Entry point for ``ray job submit -- python jobs/reproduce.py --budget quick|medium|full``
(same flags as ``relext-reproduce``); the driver joins the cluster via
RAY_ADDRESS."""

import sys

from relext_ray.cli.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
