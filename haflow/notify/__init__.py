"""Delivering notifications: a webhook's POST, an e-mail, a DAG file's callback in a process
of its own. Each delivery carries the notification's key, the same at every try."""
