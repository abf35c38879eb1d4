"""Shared pytest fixtures."""

from pg_server import pg_url  # noqa: F401  (session-scoped PostgreSQL test server)
from voila_server import voila_guide  # noqa: F401  (session-scoped Voilà serving the guide)

# Until widgets/flow.py has the roles API (Flow.role_nodes, branch flow-roles), the tests give
# Flow the roles the packaged flow.yaml has today. Tests only: the guide's code never falls back.
from widgets.flow import Flow  # noqa: E402

if not hasattr(Flow, "role_nodes"):
    _ROLES_TODAY = {"contact": ("channel", "phone"), "path": ("problem", "order")}

    def _role_nodes(self: Flow, role: str) -> tuple[str, ...]:
        return tuple(n for n in _ROLES_TODAY.get(role, ()) if n in self.nodes)

    Flow.role_nodes = _role_nodes  # type: ignore[attr-defined]
