"""The benchmark: `python -m bench` drives a running stack and prints one table."""
