"""The Solara host's limits: each from the command line, else the environment, else the
default (the Voilà host's values, see voila.json and widgets/hosts/voila/)."""

from __future__ import annotations

import dataclasses
import os

#: environment variable of each limit (GUIDE_SOLARA_<NAME>)
ENV_PREFIX = "GUIDE_SOLARA_"


@dataclasses.dataclass(frozen=True)
class Limits:
    #: visitors (virtual kernels, and pages served but not yet connected) at once; 0: no cap
    max_visitors: int = 32
    #: the busy page's Retry-After, seconds
    retry_after: int = 20
    #: seconds a page served counts as a visitor before its websocket arrives
    page_grace: float = 30.0
    #: a visit without an action (a widget message from its page) for this long is closed
    idle_timeout: float = 1800.0
    #: a visit is closed after this long in any case
    max_visit: float = 7200.0
    #: a virtual kernel whose page has gone is closed after this long (Solara's cull timeout)
    disconnected_timeout: float = 60.0
    #: how often the idle visits are looked for, seconds
    cull_interval: float = 15.0
    #: bytes in one websocket message from a page
    max_message_bytes: int = 1 << 20
    #: messages a page may send at once, then per second (all websockets of one kernel)
    message_burst: int = 200
    message_rate: float = 50.0
    #: refused messages before the websocket is closed
    abuse_limit: int = 200
    #: websockets one kernel may have open at once (a page needs one)
    max_per_kernel: int = 2
    #: websockets one client address may have open at once (behind the shipped nginx, the
    #: address it forwards in X-Real-IP; a process on this machine forwarding none: not counted)
    max_per_client: int = 16
    #: seconds one message may wait to be sent to a page (it does not read); then the
    #: websocket is dropped
    send_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **given: object) -> Limits:
        """The limits given, else ``GUIDE_SOLARA_<NAME>`` from the environment, else the
        defaults; ValueError naming the setting when a value is not a number >= 0."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            raw = given.get(field.name)
            source = "--" + field.name.replace("_", "-")
            if raw is None:
                raw = environ.get(ENV_PREFIX + field.name.upper())
                source = ENV_PREFIX + field.name.upper()
            if raw is None:
                continue
            kind = int if field.type in ("int", int) else float
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: {raw!r} is not a number") from None
            if not value >= 0:
                raise ValueError(f"{source}: {raw!r} must be 0 or more")
            values[field.name] = value
        return cls(**values)
