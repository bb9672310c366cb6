"""Configuration of the Prometheus metrics listener (``[metrics]``), off by default.

For fleets: Prometheus scrapes every agent's ``/metrics`` (docs/fleet.md).
"""

from __future__ import annotations

from typing import Tuple

from monagent.confread import Section
from monagent.records import config_record

DEFAULT_LISTEN = "127.0.0.1:9717"


@config_record
class MetricsConfig:
    """``[metrics]``: the Prometheus exposition listener, off by default."""

    enabled: bool = False
    listen: str = DEFAULT_LISTEN
    path: str = "/metrics"
    allow_remote: bool = False

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def split_listen(listen: str) -> Tuple[str, int]:
    """``"127.0.0.1:9717"`` -> ``("127.0.0.1", 9717)``; ``"[::1]:9717"`` -> ``("::1", 9717)``.

    Raises ValueError naming what is wrong.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError('must be "host:port", such as "127.0.0.1:9717" or "[::1]:9717"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError('an IPv6 address needs brackets, such as "[::1]:9717"')
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be from 1 to 65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; an empty host means every interface."""
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_metrics(section: Section) -> MetricsConfig:
    enabled = section.boolean("enabled", False)
    listen = section.string("listen", DEFAULT_LISTEN)
    path = section.string("path", "/metrics")
    allow_remote = section.boolean("allow_remote", False)
    try:
        host, _ = split_listen(listen)
    except ValueError as exc:
        section.error("listen", f'{exc}; got "{listen}"')
        listen, host = DEFAULT_LISTEN, "127.0.0.1"
    if not is_loopback(host) and not allow_remote:
        section.error(
            "listen",
            f'"{listen}" is not a loopback address: the metrics show every check of this '
            "host to whoever connects; set allow_remote = true to listen there anyway "
            "(and firewall it)",
        )
    if not path.startswith("/") or any(c.isspace() for c in path):
        section.error("path", f'must start with "/" and contain no spaces, got "{path}"')
        path = "/metrics"
    section.finish()
    return MetricsConfig(enabled, listen, path, allow_remote)


# ---------------------------------------------------------------- [notifiers.alertmanager]


__all__ = ["DEFAULT_LISTEN", "MetricsConfig", "is_loopback", "parse_metrics", "split_listen"]
