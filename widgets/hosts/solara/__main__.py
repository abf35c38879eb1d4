"""Serve the guide on Solara: ``python -m widgets.hosts.solara [--ip=127.0.0.1] [--port=8866]``
(``./manage app --solara``), with the limits of :class:`.settings.Limits` as options
(``--max-visitors=32``, ``--idle-timeout=1800``, ...) or ``GUIDE_SOLARA_*`` variables.

Solara's settings are environment variables read when Solara is imported, so they are set
here first: the guide's page module, production mode, no telemetry, the assets of the
installed solara-assets package served by this server (never a CDN), the culling of a kernel
whose page has gone.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from .settings import Limits

#: Solara's settings for the guide (environment variables Solara reads at import)
SOLARA_ENVIRONMENT = {
    "SOLARA_APP": "widgets.hosts.solara.app",
    "SOLARA_MODE": "production",
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    "SOLARA_ASSETS_PROXY": "True",
    # a file missing from solara-assets is never fetched: a CDN address that goes nowhere
    "SOLARA_ASSETS_CDN": "http://127.0.0.1:9/",
    "SOLARA_ASSETS_FONTAWESOME_ENABLED": "False",
    "SOLARA_THEME_LOADER": "plain",
    "SOLARA_THEME_SHOW_BANNER": "False",
    "SOLARA_THEME_TITLE": "아마존 고객 서비스 문의 안내 · Contacting Amazon customer service",
    "SOLARA_SSG_ENABLED": "False",
    "SOLARA_STATE_BACKEND": "",
}


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Limits]:
    parser = argparse.ArgumentParser(prog="python -m widgets.hosts.solara",
                                     description="Serve the guide on Solara's virtual kernels.")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8866, help="port to listen on")
    for field in dataclasses.fields(Limits):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=None,
                            help=f"default {field.default} (or ${'GUIDE_SOLARA_' + field.name.upper()})")
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)}
    try:
        limits = Limits.from_env(**given)
    except ValueError as exc:
        parser.error(str(exc))
    return args, limits


def configure(limits: Limits) -> None:
    """Solara's settings, before Solara is imported."""
    os.environ.update(SOLARA_ENVIRONMENT,
                      SOLARA_KERNEL_CULL_TIMEOUT=f"{limits.disconnected_timeout:g}s")


def build(limits: Limits):
    """The ASGI app: Solara's server behind the gate."""
    configure(limits)
    # ipykernel's kernel module replaces comm.create_comm and comm.get_comm_manager when it is
    # first imported (the guide's server check imports it): imported before Solara, Solara's
    # own replacements, which give each virtual kernel its comms, come last and stay.
    import ipykernel.ipkernel  # noqa: F401
    from solara.server import cdn_helper
    from solara.server import starlette as solara_starlette

    from . import gate, logstore

    def local_only(base_cache_dir, path):
        # solara-assets' files only: Solara's own get_path fetches a missing file from the CDN
        cache_path = base_cache_dir / path
        if not cdn_helper.path_is_child_of(cache_path, base_cache_dir) or not cache_path.is_file():
            raise FileNotFoundError(path)
        return cache_path

    solara_starlette.get_path = local_only
    logstore.install()  # the visits' loggers share one store (one connection per worker)
    return gate.Gate(solara_starlette.app, limits, gate.security_headers(), gate.page_scripts())


def main(argv: list[str] | None = None) -> None:
    args, limits = parse(argv)
    # the server's log: the guide's records and Solara's warnings (its INFO is a line per render)
    logging.basicConfig(level=logging.WARNING, format="[%(name)s] %(levelname)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("widgets").setLevel(logging.INFO)
    app = build(limits)
    import uvicorn

    uvicorn.run(app, host=args.ip, port=args.port, ws_max_size=limits.max_message_bytes,
                server_header=False, access_log=False, lifespan="on", loop="asyncio",
                timeout_graceful_shutdown=5, log_level="info")


if __name__ == "__main__":
    main()
