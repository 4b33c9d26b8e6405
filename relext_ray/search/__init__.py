"""Ray Tune glue that keeps a search (or any study run as Tune trials) exact across driver deaths."""
