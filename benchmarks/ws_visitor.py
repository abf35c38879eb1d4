"""A visitor without a browser: the page's HTTP request, then its kernel websocket, held open
and answered as the page's widget manager would, without drawing anything.

The two hosts speak the Jupyter kernel protocol over a websocket, but reach the guide's widgets
differently:

* **Voilà** (``voila``): ``GET /`` takes a kernel that already ran the notebook (preheated)
  and names it in the page (``jupyter-config-data``'s ``kernelId``); the page connects
  ``/api/kernels/<id>/channels`` with the ``v1.kernel.websocket.jupyter.org`` framing and asks
  for every widget's state through a ``jupyter.widget.control`` comm (``request_states``).
* **Solara** (``solara``): ``GET /`` sets the ``solara-session-id`` cookie; the page makes up
  its kernel id and connects ``/jupyter/api/kernels/<id>/channels?session_id=<page id>`` (the
  legacy framing: JSON text frames, binary frames with 4-byte offsets when a message has
  buffers). A virtual kernel is made for that id, and the page opens a ``solara.control``
  comm and sends it ``run``: the app runs for this visitor, and each widget it makes reaches
  the page as a ``comm_open`` (target ``jupyter.widget``) with its state, then ``finished``
  names the root widget. Closing the page sends ``POST /_solara/api/close/<id>?session_id=...``
  (the kernel is freed; without it, Solara keeps it until ``cull_timeout``).

A *click* is what the page sends when the visitor picks an answer on the first screen: the
dropdown's new ``index`` (a comm ``update``), then the Continue button's ``click`` event (a comm
``custom`` message). It is answered when the kernel reports ``idle`` for that message (both hosts
wrap a comm message's handling in ``busy``/``idle`` status messages with the message as
parent); the widget updates that show the next step arrive before it. :attr:`Visit.updates`
counts them, so a click that changed nothing shows.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

from pathlib import Path

from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernel_ws import V1, KernelClient  # noqa: E402

HOSTS = ("voila", "solara")
_PAGE_CONFIG = re.compile(
    r'<script id="jupyter-config-data" type="application/json">\s*(.*?)\s*</script>', re.S)


class SolaraClient(KernelClient):
    """The legacy framing as Solara's page sends it: a JSON text frame carries an empty
    ``buffers`` list (the widgets' update handler reads it)."""

    def encode(self, msg: dict, channel: str = "shell", buffers: list[bytes] = ()) -> bytes | str:
        if buffers:
            return super().encode(msg, channel, buffers)
        return json.dumps(dict(msg, channel=channel, buffers=[]))


class VisitError(RuntimeError):
    """The page or its websocket did not do what a page needs."""


@dataclass
class Visit:
    """One visitor's timings (seconds, ``time.monotonic`` based) and what it saw."""

    host: str
    started: float = 0.0
    page_s: float = float("nan")  # page HTML received
    socket_s: float = float("nan")  # websocket open
    interactive_s: float = float("nan")  # every widget's state known (the page could draw)
    click_s: float = float("nan")  # click sent -> kernel idle for it
    updates: int = 0  # widget updates the click brought
    models: int = 0
    kernel_id: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error


class Visitor:
    """One visitor of ``base_url`` (ending in ``/``) served by ``host`` (``voila``/``solara``)."""

    def __init__(self, host: str, base_url: str, timeout: float = 180.0) -> None:
        if host not in HOSTS:
            raise ValueError(f"host must be one of {HOSTS}")
        self.host = host
        self.base_url = base_url
        self.timeout = timeout
        self.jar = http.cookiejar.CookieJar()
        self.client: KernelClient | None = None
        self.page_id = uuid.uuid4().hex
        self.states: dict[str, dict] = {}  # model id -> {"model_name": ..., "state": {...}}
        self.visit = Visit(host)

    # -- the page

    def _cookie_header(self) -> dict[str, str]:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        return {"Cookie": cookies} if cookies else {}

    def _get_page(self) -> str:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        try:
            with opener.open(self.base_url, timeout=self.timeout) as response:
                return response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            raise VisitError(f"page: HTTP {error.code}") from None

    def open(self) -> Visit:
        """Load the page and connect its kernel; returns with every widget state known."""
        visit = self.visit
        visit.started = time.monotonic()
        html = self._get_page()
        visit.page_s = time.monotonic() - visit.started
        if self.host == "voila":
            config = _PAGE_CONFIG.search(html)
            if not config:
                raise VisitError("the page names no kernel")
            visit.kernel_id = json.loads(config.group(1))["kernelId"]
            self.client = KernelClient.connect(self.base_url, visit.kernel_id, protocol=V1,
                                               timeout=self.timeout,
                                               headers=self._cookie_header())
            visit.socket_s = time.monotonic() - visit.started
            control = self.client.open_widget_control()
            self.states = self.client.request_states(control, timeout=self.timeout)
        else:
            visit.kernel_id = str(uuid.uuid4())
            url = (self.base_url.replace("http://", "ws://")
                   + f"jupyter/api/kernels/{visit.kernel_id}/channels?session_id={self.page_id}")
            from websockets.sync.client import connect

            socket = connect(url, additional_headers=self._cookie_header(),
                             open_timeout=self.timeout, max_size=None, close_timeout=2)
            self.client = SolaraClient(socket, None)
            visit.socket_s = time.monotonic() - visit.started
            comm_id = uuid.uuid4().hex
            self.client.send("comm_open", {"comm_id": comm_id, "target_name": "solara.control",
                                           "data": {}})
            self.client.comm_msg(comm_id, {"method": "run", "args": {"path": "", "appName": None,
                                                                     "dark": False}})
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VisitError("the app did not finish running")
                channel, msg = self.client.receive(left)
                kind = msg["header"].get("msg_type")
                content = msg.get("content", {})
                if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                    state = content.get("data", {}).get("state", {})
                    self.states[content["comm_id"]] = {"model_name": state.get("_model_name"),
                                                       "state": state}
                elif kind == "comm_msg" and content.get("comm_id") == comm_id:
                    method = content.get("data", {}).get("method")
                    if method == "finished":
                        break
                elif kind == "comm_msg":
                    self._apply(content)
        visit.interactive_s = time.monotonic() - visit.started
        visit.models = len(self.states)
        return visit

    def _apply(self, content: dict) -> None:
        data = content.get("data", {})
        model = self.states.get(content.get("comm_id"))
        if model is not None and data.get("method") in ("update", "echo_update"):
            model["state"].update(data.get("state", {}))

    # -- the click

    def _model(self, name: str, **state) -> str:
        found = [mid for mid, m in self.states.items() if m.get("model_name") == name
                 and all(m["state"].get(k) == v for k, v in state.items())]
        if not found:
            raise VisitError(f"no {name} with {state} among {len(self.states)} widgets")
        return found[0]

    def click(self, continue_label: str, option: int = 1) -> float:
        """Pick option ``option`` of the first screen's dropdown and press Continue; returns
        the seconds from the button's click message to the kernel's idle for it."""
        assert self.client is not None
        dropdown = self._model("DropdownModel")
        button = self._model("ButtonModel", description=continue_label)
        # the dropdown's new value, as the page sends it; wait until it is handled
        update = self.client.comm_msg(dropdown, {"method": "update", "state": {"index": option},
                                                 "buffer_paths": []})
        self._wait_idle(update["header"]["msg_id"])
        started = time.monotonic()
        pressed = self.client.comm_msg(button, {"method": "custom",
                                                "content": {"event": "click"}})
        self.visit.updates = self._wait_idle(pressed["header"]["msg_id"])
        self.visit.click_s = time.monotonic() - started
        return self.visit.click_s

    def _wait_idle(self, msg_id: str) -> int:
        """Read until the kernel is idle for ``msg_id``; returns the widget updates seen."""
        assert self.client is not None
        deadline = time.monotonic() + self.timeout
        updates = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VisitError("no answer to the click")
            channel, msg = self.client.receive(left)
            kind = msg["header"].get("msg_type")
            if kind == "comm_msg":
                self._apply(msg["content"])
                if msg["content"].get("data", {}).get("method") == "update":
                    updates += 1
            elif kind == "comm_open" and msg["content"].get("target_name") == "jupyter.widget":
                state = msg["content"].get("data", {}).get("state", {})
                self.states[msg["content"]["comm_id"]] = {"model_name": state.get("_model_name"),
                                                          "state": state}
            elif (kind == "status" and msg["content"].get("execution_state") == "idle"
                  and msg["parent_header"].get("msg_id") == msg_id):
                return updates

    def drain(self, seconds: float = 0.05) -> None:
        """Read what is waiting (the server must not hold a backlog for an idle visitor)."""
        if self.client is None:
            return
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                self.client.receive(max(0.001, end - time.monotonic()))
        except (TimeoutError, ConnectionClosed):
            pass

    # -- leaving

    def close(self) -> None:
        """Leave like a closed tab: the host's page-close request, then the websocket."""
        kernel = self.visit.kernel_id
        if kernel:
            if self.host == "voila":
                xsrf = next((c.value for c in self.jar if c.name == "_xsrf"), "")
                path = f"voila/api/shutdown/{kernel}"
                body = urllib.parse.urlencode({"_xsrf": xsrf}).encode()
            else:
                path = f"_solara/api/close/{kernel}?session_id={self.page_id}"
                body = b""
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
            try:
                opener.open(urllib.request.Request(self.base_url + path, data=body,
                                                   method="POST"), timeout=30).close()
            except (urllib.error.URLError, OSError):
                pass
        if self.client is not None:
            self.client.close()
            self.client = None
