"""Ray clusters: connecting to one, what a worker was given, and a network-namespace dev cluster."""
