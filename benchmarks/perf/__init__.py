"""Speed and memory benchmarks (run as modules; each prints a table and can write JSON)."""
