"""Entry point for ``ray job submit -- python jobs/predict.py --input ... --model ... --output ...``
(same flags as ``python -m relext_ray.predict``); the driver joins the cluster via RAY_ADDRESS."""

import sys

from relext_ray.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
