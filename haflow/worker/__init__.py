"""Workers: claim task attempts, run them, heartbeat and report."""
