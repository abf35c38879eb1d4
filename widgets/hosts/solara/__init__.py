"""The guide on Solara's virtual kernels: many visitors in one Python process, each with its
own widget tree, the same flow, engine and view as under Voilà.

- :mod:`.app`: the page Solara renders for each visitor (``Page``), the guide of
  :func:`widgets.app.guide` with the visit's link parameters, its log closed with the visit;
- :mod:`.gate`: the ASGI gate in front of Solara's server: visitor cap and busy page, security
  headers, what a link and a page may ask for, websocket message checks, idle culling;
- :mod:`.settings`: the host's limits, from the command line or the environment;
- :mod:`.logstore`: one interaction-log store for all the visits of a worker process;
- ``python -m widgets.hosts.solara`` (``./manage app --solara``) serves it on 127.0.0.1:8866.

Solara is imported by these modules only, never by the guide itself.
"""
