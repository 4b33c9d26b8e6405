"""relext_ray: relation extraction on imbalanced data (Ye et al., ACL 2019) on Ray."""

__version__ = "0.1.0"
