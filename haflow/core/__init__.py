"""The pure core: states, transitions and planning over plain data; no IO imports allowed."""
