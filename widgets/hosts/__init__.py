"""The servers that host the guide for the public, and what they share.

``common`` holds the host-neutral protections (standard library only): the bilingual busy
page and its HTTP 503 with ``Retry-After``, the client's address behind the shipped nginx, the
security headers and the websocket message size (read from ``voila.json``), and the checks of
one connection's incoming messages (size, rate, refusals before closing). ``voila`` is the
Voilà host: its server hooks, one module per job, and the kernel-side pieces (the visitor's
request, the check that the kernel runs under the guide's settings). ``solara`` is the Solara
host: the same guide on Solara's virtual kernels, many visitors in one process, behind a gate
with the same protections.

Nothing is imported here: a guide kernel imports ``widgets.hosts.voila.request`` and
``widgets.hosts.voila.settings_check`` without loading any server.
"""
