"""``python -m relext_ray.predict``: batch prediction (see :mod:`relext_ray.cli.predict`)."""

import sys

from relext_ray.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
