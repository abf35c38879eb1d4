"""The guide served by Voilà with the project's voila.json, checked over plain HTTP.

Voilà 0.5.13 executes the notebook before answering (with a preheated kernel the
page is completed once the request arrives) and streams the rendered outputs
into the page, one ``<script type="application/vnd.voila.cell-output+json">``
per output. A widget output carries only a view reference
(``application/vnd.jupyter.widget-view+json`` with a ``model_id``), the same
with and without preheating; the widget state itself is sent to the browser
over the kernel websocket, not embedded in the page. A failing cell shows up
as a ``jp-RenderedText`` output of type ``application/vnd.jupyter.stderr``.
"""

from __future__ import annotations

import html
import os
import json
import re
import socket
import time
from pathlib import Path

import psutil
import pytest
from voila_server import (
    CONFIG_FILE,
    GUIDE_NOTEBOOK,
    Page,
    VoilaServer,
    beacon,
    load_config,
    visit,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ERROR_MARKERS = ("Traceback", "application/vnd.jupyter.stderr",
                 "There was an error when executing cell")



def wait_gone(server: VoilaServer, kernel_ids: set[str], timeout: float) -> float:
    """Seconds until none of ``kernel_ids`` runs any more (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while kernel_ids & server.kernel_ids():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"kernels still running after {timeout:.0f} s: "
                                 f"{sorted(kernel_ids & server.kernel_ids())}")
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def guide_page(voila_guide: VoilaServer):
    """One visit of the guide, its kernel shut down afterwards."""
    voila_guide.wait_until_preheated()
    page = visit(voila_guide)
    yield page
    if page.kernel_id:
        beacon(voila_guide, page.kernel_id, page.cookie("_xsrf"), page.cookies)


# --------------------------------------------------------------------------- configuration


def test_voila_json_matches_the_deployment_requirements():
    config = load_config()
    voila, settings, kernels = (config["Voila"], config["VoilaConfiguration"],
                                config["MappingKernelManager"])
    assert voila["ip"] == "127.0.0.1"
    assert voila["port"] == 8866
    assert voila["open_browser"] is False
    assert settings["strip_sources"] is True
    assert settings["show_tracebacks"] is False
    assert settings["preheat_kernel"] is True and settings["default_pool_size"] >= 1
    # voila.json is configuration for the server, never a notebook or folder choice:
    # `./manage summary` serves another notebook with the same file.
    assert "notebook_path" not in voila and "root_dir" not in voila
    # idle culling, the backstop for pages gone without the page-close beacon: never of
    # connected or busy kernels; the timeout leaves a loading page time to connect its
    # websocket (30 s seen on a 2-core machine under load) and survives short network
    # drops, yet an abandoned kernel is gone within a couple of minutes
    assert kernels["cull_connected"] is False and kernels["cull_busy"] is False
    assert 60 <= kernels["cull_idle_timeout"] <= 120
    assert 0 < kernels["cull_interval"] <= 30
    # a page whose kernel is slow to deliver the widget's output (many visitors arriving at
    # once on a small machine) must wait for it rather than render empty: nbclient's default
    # of 4 s lost the widget on 2 of 16 simultaneous visits on a 2-core machine
    assert config["VoilaExecutor"]["iopub_timeout"] >= 30


def test_voila_finds_voila_json_from_any_working_directory():
    """Voilà 0.5.13 has no --config option: it looks for voila.json in its working directory,
    then on the Jupyter configuration path, where installing the project put the guide's
    (``<environment>/etc/jupyter/voila.json``, the project's file). Voilà started in any
    folder of this environment finds it (tests/test_fail_closed.py serves the guide so)."""
    from jupyter_core.paths import ENV_CONFIG_PATH
    from voila.app import Voila

    paths = Voila().config_file_paths
    assert paths[0] == os.getcwd()
    assert ENV_CONFIG_PATH[0] in paths[1:]
    assert "config" not in Voila.aliases
    installed = Path(ENV_CONFIG_PATH[0]) / CONFIG_FILE.name
    assert installed.read_bytes() == CONFIG_FILE.read_bytes(), (
        f"{installed} is not the project's voila.json: install the project again")


# --------------------------------------------------------------------------- the rendered page


def test_guide_page_renders_the_widget(guide_page: Page):
    assert guide_page.status == 200
    assert guide_page.content_type.startswith("text/html")
    views = [out["data"][WIDGET_VIEW] for out in guide_page.outputs
             if WIDGET_VIEW in out.get("data", {})]
    assert views, f"no widget view among the page's outputs: {guide_page.outputs}"
    assert all(re.fullmatch(r"[0-9a-f]{32}", view["model_id"]) for view in views)
    assert views[0]["version_major"] == 2


def test_simultaneous_visits_all_get_the_guide(voila_guide: VoilaServer):
    """Sixteen visitors at once, more than the preheated pool: every page carries the widget."""
    from concurrent.futures import ThreadPoolExecutor

    voila_guide.wait_until_preheated()
    visits = 16
    with ThreadPoolExecutor(visits) as pool:
        pages = list(pool.map(lambda _: visit(voila_guide), range(visits)))
    try:
        assert [p.status for p in pages] == [200] * visits
        empty = [p.kernel_id for p in pages
                 if not any(WIDGET_VIEW in o.get("data", {}) for o in p.outputs)]
        assert not empty, (f"{len(empty)} of {visits} pages rendered without the guide; "
                           f"server log:\n{voila_guide.log()[-3000:]}")
        assert "Timeout waiting for IOPub output" not in voila_guide.log()
        assert len({p.kernel_id for p in pages}) == visits
    finally:
        for page in pages:
            beacon(voila_guide, page.kernel_id, page.cookie("_xsrf"), page.cookies)


def test_guide_page_is_titled_in_both_languages(guide_page: Page):
    """The browser tab and the loading message name the guide, not the notebook file."""
    title = re.search(r"<title>(.*?)</title>", guide_page.html, re.S)
    assert title and html.unescape(title.group(1)).strip() == (
        "아마존 고객 서비스 문의 안내 · Contacting Amazon customer service")
    assert "Running guide" not in guide_page.html


def test_guide_page_has_no_error_output(guide_page: Page):
    for marker in ERROR_MARKERS:
        assert marker not in guide_page.html, marker
    assert not [out for out in guide_page.outputs if out.get("output_type") == "error"]
    assert not [out for out in guide_page.outputs if out.get("name") == "stderr"]


def test_guide_page_has_no_source_code(guide_page: Page):
    notebook = json.loads(GUIDE_NOTEBOOK.read_text(encoding="utf-8"))
    code_lines = {line.strip() for cell in notebook["cells"] if cell["cell_type"] == "code"
                  for line in "".join(cell["source"]).splitlines() if len(line.strip()) > 3}
    assert code_lines, "the guide notebook has no code?"
    # highlighted source is split into <span>s: compare with the page's text as well
    text = html.unescape(re.sub(r"<[^>]*>", "", guide_page.html))
    for line in code_lines:
        assert line not in guide_page.html and line not in text, line
    code_cells = re.findall(r'class="(jp-Cell jp-CodeCell[^"]*)"', guide_page.html)
    assert code_cells and all("jp-mod-noInput" in classes for classes in code_cells), code_cells
    # what an unstripped code cell has: its prompt and a highlighted editor copy of the source
    assert not re.search(r'class="[^"]*\bjp-(InputPrompt|InputArea-editor)\b', guide_page.html)


def test_guide_page_used_a_preheated_kernel(voila_guide: VoilaServer, guide_page: Page):
    assert guide_page.kernel_id in voila_guide.kernel_ids()
    assert f"Using pre-heated kernel: {guide_page.kernel_id}" in voila_guide.log()


@pytest.mark.parametrize("path", ["voila/tree", "voila/render/guide.ipynb", "guide.ipynb",
                                  "voila/files/guide.ipynb", "voila/files/../voila.json"])
def test_only_the_guide_is_served(voila_guide: VoilaServer, path: str):
    """No folder listing, no other notebook, no notebook file (it holds the source)."""
    status, _, _ = voila_guide.get(path)
    assert status in (403, 404)


# --------------------------------------------------------------------------- the server


def test_server_listens_on_loopback_only(voila_guide: VoilaServer):
    listening = [c.laddr for c in voila_guide.psutil_process.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    assert {addr.port for addr in listening} == {voila_guide.port}
    other_addresses = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                       if a.family == socket.AF_INET and not a.address.startswith("127.")]
    for address in other_addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            assert sock.connect_ex((address, voila_guide.port)) != 0, address


def test_closing_the_page_shuts_its_kernel_down(voila_guide: VoilaServer):
    """The page-close beacon works: the page sets the _xsrf cookie the beacon echoes, so the
    shutdown is accepted (without it, jupyter_server answers 403 and the kernel leaks)."""
    page = visit(voila_guide)
    assert page.kernel_id in voila_guide.kernel_ids()
    xsrf = page.cookie("_xsrf")
    assert xsrf, "the page did not set the _xsrf cookie"

    # XSRF protection is still on: a shutdown without the token is refused
    assert beacon(voila_guide, page.kernel_id, None, page.cookies) == 403
    assert page.kernel_id in voila_guide.kernel_ids()

    assert beacon(voila_guide, page.kernel_id, xsrf, page.cookies) == 204
    seconds = wait_gone(voila_guide, {page.kernel_id}, timeout=15)
    print(f"kernel {page.kernel_id} gone {seconds:.1f} s after the beacon")


# --------------------------------------------------------------------------- errors


def test_tracebacks_are_not_shown_to_visitors(voila_servers, tmp_path: Path):
    notebook = tmp_path / "failing.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
                   "outputs": [], "source": ["raise ValueError('secret-detail-1234')"]}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }), encoding="utf-8")
    with voila_servers.serve(notebook, extra_args=["--pool_size=1"]) as server:
        page = visit(server)
        assert page.status == 200
        assert "There was an error when executing cell" in page.html  # Voilà's generic note
        for leak in ("secret-detail-1234", "ValueError", "Traceback"):
            assert leak not in page.html, leak


def test_guide_page_uses_the_guide_template_and_no_outside_resource(guide_page: Page):
    """The page is the guide's template (with its page script) and loads nothing from a CDN."""
    assert "voila/templates/guide/static/guide.js" in guide_page.html
    external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", guide_page.html)
    assert external == []
    assert "cdnjs.cloudflare.com" not in guide_page.html
    assert "cdn.jsdelivr.net" not in guide_page.html
