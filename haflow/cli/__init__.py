"""The `haflow` command line (click)."""
