"""Executors that run groups of a zoo build elsewhere (Ray). Imported lazily by ``build``."""
