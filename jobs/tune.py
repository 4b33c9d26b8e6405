"""Entry point for ``ray job submit -- python jobs/tune.py --config tune_configs/<name>.yaml``
(same flags as ``relext-tune``); the driver joins the cluster via RAY_ADDRESS."""

import sys

from relext_ray.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
