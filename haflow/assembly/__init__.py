"""The composition root: builds the daemons (scheduler, worker, webserver, standalone) and their
metrics from the settings. The only package that wires parts of different packages together;
`haflow.cli` calls it, and the packages below it import neither it, the CLI nor, except where
pyproject's import-linter contracts list it, the metrics (`make lint` enforces the layers)."""
