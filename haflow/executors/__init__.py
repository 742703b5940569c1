"""Executors hand committed attempts to something that claims and runs them."""
