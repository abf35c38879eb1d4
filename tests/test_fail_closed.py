"""The guide is served with its template and every protection, or not at all, whatever folder
Voilà starts in and however it is started (see widgets/hosts/voila/settings_check.py).

* Installing the project puts ``voila.json`` into ``<environment>/etc/jupyter``: a Voilà
  started in a temporary folder (not the project root), with the guide's notebook by its
  absolute path, as the ``voila`` script and as ``python -m voila``, serves the guide with its
  template and its Content-Security-Policy, reflects no hostile ``?theme=``, and its websocket
  checks are in force (a legacy-protocol kernel websocket is refused with 400).
* A server whose settings are weakened (on the command line, or by a per-user ``voila.json``)
  logs an ERROR per setting, naming it and the value the guide needs, and answers the plain
  bilingual page (HTTP 503, no script) to every page and a bare 503 to kernel websockets.
* A server where the guide's hooks are not loaded at all (its identity provider replaced: no
  self-check runs) serves the page, but the guide's kernel shows the "not available here"
  notice instead of the guide and writes the reason to the server's log.

Every server here runs with temporary per-user Jupyter folders and no ``JUPYTER_PATH``, as a
new user would.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_ws import V1, KernelClient
from voila_server import (
    CONFIG_FILE,
    GUIDE_NOTEBOOK,
    PROJECT_ROOT,
    VoilaServer,
    VoilaServers,
    isolated_jupyter_env,
    load_config,
    visit,
)
from websockets.exceptions import InvalidStatus

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HOSTILE_THEME = '?theme=x"><img src=x onerror=alert(document.cookie)>'
CSP = load_config()["Voila"]["tornado_settings"]["headers"]["Content-Security-Policy"]
#: Per-user or extra Jupyter settings that could make a run differ from a new user's.
UNSET = ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "QUERY_STRING",
         "GUIDE_LOG")


def new_user_env(home: Path, data: Path) -> dict[str, str | None]:
    """A server's environment as a new user's: temporary per-user Jupyter folders (config,
    data, runtime, IPython), none of ``UNSET``, an empty temporary interaction log."""
    return {**isolated_jupyter_env(home, UNSET), "GUIDE_DATA_DIR": str(data),
            "GUIDE_LOG_URL": f"sqlite://{data / 'events.sqlite3'}"}


def serve_elsewhere(voila_servers: VoilaServers, tmp_path_factory: pytest.TempPathFactory, *,
                    as_typed: bool,
                    extra_args: tuple[str, ...] = (),
                    user_config: dict | None = None) -> Iterator[VoilaServer]:
    """The guide served by a Voilà started in a temporary folder; ``user_config``: a
    ``voila.json`` in the per-user Jupyter configuration folder, which then comes before the
    environment's (as for a user who does not own the environment)."""
    tmp = tmp_path_factory.mktemp("elsewhere")
    folder = tmp / "somewhere-else"
    folder.mkdir()
    env = new_user_env(tmp / "home", tmp / "data")
    if user_config is not None:
        (tmp / "home" / "config" / "voila.json").write_text(json.dumps(user_config))
        env["JUPYTER_PREFER_ENV_PATH"] = "0"
    with voila_servers.serve(GUIDE_NOTEBOOK, env=env, extra_args=extra_args, as_typed=as_typed,
                             cwd=folder) as server:
        yield server


def widget_views(outputs: list[dict]) -> list[dict]:
    return [out["data"][WIDGET_VIEW] for out in outputs if WIDGET_VIEW in out.get("data", {})]


def html_outputs(outputs: list[dict]) -> str:
    return "\n".join(out.get("data", {}).get("text/html", "") for out in outputs)


# --------------------------------------------------------------------------- the installed settings


def test_the_environment_holds_the_guide_configuration():
    """``voila.json`` is installed where every Voilà in the environment looks for it: on the
    Jupyter configuration path, after the working folder; it is the project's file as it is
    now (after editing it, install again: ``pip install -e .``, or any ./manage command)."""
    from jupyter_core.paths import ENV_CONFIG_PATH, jupyter_config_path
    from voila.app import Voila

    from widgets.hosts.voila.settings_check import installed_config_path

    installed = installed_config_path()
    assert installed == Path(ENV_CONFIG_PATH[0]) / "voila.json"
    assert str(installed.parent) in jupyter_config_path()
    assert str(installed.parent) in Voila().config_file_paths
    assert installed.is_file(), f"{installed} is missing: install the project (pip install -e .)"
    assert installed.read_bytes() == CONFIG_FILE.read_bytes(), (
        f"{installed} is not the project's voila.json: install the project again")


def test_the_self_check_asks_for_what_voila_json_sets():
    """The settings the self-check requires are the ones voila.json sets, and the classes it
    requires are the ones voila.json names."""
    from widgets.hosts.voila import kernels, settings_check

    config = load_config()
    for setting, needed in settings_check.REQUIRED.items():
        section, _, name = setting.partition(".")
        assert config[section][name] == needed, setting
    assert config["Voila"]["identity_provider_class"] == \
        "widgets.hosts.voila.admission.GuideIdentityProvider"
    assert config["Voila"]["kernel_websocket_connection_class"] == \
        "widgets.hosts.voila.websocket.GuideKernelWebsocketConnection"
    assert config["VoilaConfiguration"]["multi_kernel_manager_class"] == \
        "widgets.hosts.voila.kernels.GuideKernelManager"
    assert kernels.GuideKernelManager.__module__ == "widgets.hosts.voila.kernels"
    headers = config["Voila"]["tornado_settings"]["headers"]
    assert set(settings_check.TORNADO_HEADERS) <= set(headers)


def test_outside_a_kernel_the_guide_is_not_refused():
    """Called in a plain Python process (a script, these tests), the guide runs."""
    from widgets.hosts.voila.settings_check import kernel_refusal, unavailable_notice

    assert kernel_refusal() is None
    assert unavailable_notice() is None


# --------------------------------------------------------------------------- started elsewhere


@pytest.fixture(scope="module", params=[True, False], ids=["voila-script", "python-m-voila"])
def guide_elsewhere(request, voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    yield from serve_elsewhere(voila_servers, tmp_path_factory, as_typed=request.param)


def test_started_elsewhere_the_guide_has_its_template_and_headers(guide_elsewhere: VoilaServer):
    server = guide_elsewhere
    assert Path(server.process.args[-1]).is_absolute()
    folder = Path(server.psutil_process.cwd())
    assert folder != PROJECT_ROOT and not (folder / "voila.json").exists()
    page = visit(server, urllib.parse.quote(HOSTILE_THEME, safe="?=&"))
    assert page.status == 200
    for marker in ("onerror", "<img src=x"):
        assert marker not in page.html, "the link's theme was written into the page"
    assert "static/guide.js" in page.html, "the page is not the guide's template"
    assert 'data-jp-theme-name="JupyterLab Light"' in page.html
    assert "cdn.jsdelivr.net" not in page.html
    status, headers, _ = server.get("")
    assert status == 200
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Frame-Options"] == "DENY"
    assert widget_views(page.outputs), (
        f"the guide was not shown: {html_outputs(page.outputs)[:500]}\n{server.log()[-2000:]}")
    assert "guide-unavailable" not in html_outputs(page.outputs)
    assert "guide: server settings checked" in server.log()
    assert "ERROR" not in server.log()


def test_started_elsewhere_the_preheated_kernels_show_the_guide(guide_elsewhere: VoilaServer):
    """voila.json's preheated pool is in force, and its kernels (started before any visit)
    carry the mark of the checked server: a visit taking one gets the guide."""
    guide_elsewhere.wait_until_preheated(timeout=120)
    page = visit(guide_elsewhere, "?lang=en")
    assert page.status == 200
    assert widget_views(page.outputs), html_outputs(page.outputs)[:500]
    assert f"Using pre-heated kernel: {page.kernel_id}" in guide_elsewhere.log()


def test_started_elsewhere_the_websocket_checks_are_in_force(guide_elsewhere: VoilaServer):
    page = visit(guide_elsewhere)
    assert page.status == 200 and page.kernel_id
    with pytest.raises(InvalidStatus) as refusal:
        KernelClient.connect(guide_elsewhere.url, page.kernel_id, protocol=None).close()
    assert refusal.value.response.status_code == 400
    with KernelClient.connect(guide_elsewhere.url, page.kernel_id, protocol=V1) as client:
        assert client.socket.subprotocol == V1


# --------------------------------------------------------------------------- weakened settings

WEAKENED = {
    "template-lab": dict(extra_args=("--VoilaConfiguration.template=lab",),
                         expect=["VoilaConfiguration.template is 'lab'; the guide needs 'guide'"]),
    "theme-override": dict(
        extra_args=("--VoilaConfiguration.allow_theme_override=YES",),
        expect=["VoilaConfiguration.allow_theme_override is 'YES'; the guide needs 'NO'"]),
    "user-config": dict(
        # a per-user voila.json that replaces the tornado settings (no headers) and shows
        # tracebacks: it comes before the environment's for a user who does not own it
        user_config={"Voila": {"tornado_settings": {"websocket_max_message_size": 1048576}},
                     "VoilaConfiguration": {"show_tracebacks": True}},
        expect=["VoilaConfiguration.show_tracebacks is True; the guide needs False",
                "Voila.tornado_settings.headers['Content-Security-Policy'] is None; "
                f"the guide needs {CSP!r}"]),
}


@pytest.fixture(scope="module", params=list(WEAKENED))
def weakened(request, voila_servers, tmp_path_factory) -> Iterator[tuple[VoilaServer, list[str]]]:
    case = WEAKENED[request.param]
    for server in serve_elsewhere(voila_servers, tmp_path_factory, as_typed=False,
                                  extra_args=case.get("extra_args", ()),
                                  user_config=case.get("user_config")):
        yield server, case["expect"]


def test_weakened_settings_answer_the_plain_page_and_log_why(weakened):
    server, expected = weakened
    for path in ("", urllib.parse.quote(HOSTILE_THEME, safe="?=&"), "?lang=en"):
        status, headers, body = server.get(path)
        assert status == 503, path
        assert headers["Content-Type"].startswith("text/html")
        assert "<script" not in body.lower() and "onerror" not in body
        assert "The guide is not available on this server" in body
        assert "이 서버에서는 안내서를 열 수 없습니다" in body
        assert "guide.js" not in body and "jupyter-config-data" not in body
    log = server.log()
    for line in expected:
        assert f"ERROR | guide: not serving the guide: {line}" in log, log[-3000:]
    assert "guide: server settings checked" not in log


def test_weakened_settings_give_no_kernel_websocket(weakened):
    """No kernel websocket at all: not to the kernels the server started for its preheated
    pool (nor to any other id)."""
    server, _ = weakened
    kernel_id = next(iter(server.kernel_ids()), str(uuid.uuid4()))
    for protocol in (V1, None):
        with pytest.raises(InvalidStatus) as refusal:
            KernelClient.connect(server.url, kernel_id, protocol=protocol).close()
        assert refusal.value.response.status_code == 503


# --------------------------------------------------------------------------- hooks not loaded

WITHOUT_HOOKS = {
    # no self-check runs: the identity provider is not the guide's
    "provider-replaced": ("--Voila.identity_provider_class="
                          "jupyter_server.auth.identity.PasswordIdentityProvider",),
    # none of the guide's classes
    "all-replaced": (
        "--Voila.identity_provider_class=jupyter_server.auth.identity.PasswordIdentityProvider",
        "--Voila.kernel_websocket_connection_class="
        "jupyter_server.services.kernels.connection.channels.ZMQChannelsWebsocketConnection",
        "--VoilaConfiguration.multi_kernel_manager_class="
        "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager",
    ),
}


@pytest.fixture(scope="module", params=list(WITHOUT_HOOKS))
def without_hooks(request, voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    yield from serve_elsewhere(voila_servers, tmp_path_factory, as_typed=False,
                               extra_args=WITHOUT_HOOKS[request.param])


def test_without_the_hooks_the_kernel_shows_a_notice_not_the_guide(without_hooks: VoilaServer):
    page = visit(without_hooks, "?lang=en")
    assert page.status == 200
    shown = html_outputs(page.outputs)
    assert not widget_views(page.outputs), "the guide was shown by a server without its hooks"
    assert "This guide is not available here." in shown
    assert "이 안내서는 여기에서 제공되지 않습니다." in shown
    assert "<script" not in shown.lower()
    log = without_hooks.log()
    assert "[guide] ERROR widgets.hosts.voila.settings_check: guide: not shown in this kernel: this kernel " \
           "was started by a Voilà server that did not run or did not pass" in log, log[-3000:]
    assert "guide: server settings checked" not in log


# --------------------------------------------------------------------------- the project folder


def test_the_project_folder_server_passes_its_check(voila_servers, tmp_path_factory):
    """The way the tests, ./manage app and the deployment start it (from the project root)."""
    data = tmp_path_factory.mktemp("root-data")
    env = {"GUIDE_DATA_DIR": str(data), "GUIDE_LOG_URL": f"sqlite://{data / 'events.sqlite3'}"}
    with voila_servers.serve(GUIDE_NOTEBOOK, env=env) as server:
        page = visit(server)
        assert page.status == 200 and widget_views(page.outputs)
        assert "guide: server settings checked" in server.log()
