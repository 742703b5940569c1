"""The web server: UI pages, the REST API under /api/v1, /health and /ready, and /metrics.

Stateless by design: sessions are signed cookies (every webserver of a cluster shares
`[webserver] secret_key`), and users, tokens and the login rate limit live in the metastore, so
any number of webservers can stand behind a load balancer and any one may die.
"""

from haflow.web.app import create_app

__all__ = ["create_app"]
