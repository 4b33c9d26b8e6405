"""``python -m relext_ray.train``: one training run (see :mod:`relext_ray.cli.train`)."""

import sys

from relext_ray.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
