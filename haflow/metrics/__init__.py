"""Prometheus metrics of every haflow daemon, as observers of the daemons' events.

The scheduler and the attempt runner emit events through small listener seams
(`haflow.scheduler.listener`, `haflow.worker.listener`); the listeners here turn them into
counters and histograms. Live state (leadership, elector mode, ZooKeeper connection) is read
at scrape time by collectors, and the cluster's gauges (task instances, queued attempts,
workers) are read from the metastore by the leader alone. Every metric is listed, with its
type, labels and meaning, in haflow/metrics/README.md.
"""
