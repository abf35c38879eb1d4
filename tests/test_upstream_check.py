"""The Voilà hooks refuse to start on an upstream they were not made for
(widgets/hosts/voila/upstream.py): each target they replace, subclass or read, private
attributes included, is checked, and every private attribute the hooks read is a target."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from widgets.hosts import voila as voila_host
from widgets.hosts.voila import upstream

HOOKS = Path(voila_host.__file__).resolve().parent
#: the kernel's side, which reads nothing of Voilà or jupyter_server
KERNEL_SIDE = {"request.py"}


def _owner_and_name(target: tuple[str, ...]) -> tuple[object, str]:
    module_name, path = target[:2]
    owner: object = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    return owner, name


def _stub(*args, **kwargs):
    """Stands for an upstream function whose code changed."""
    return None


@pytest.mark.parametrize("target", upstream.UPSTREAM_TARGETS, ids=lambda t: ".".join(t[:2]))
def test_each_target_that_goes_missing_or_changes_stops_the_server(monkeypatch, target):
    upstream.check_upstream()  # as installed: nothing missing
    owner, name = _owner_and_name(target)
    if len(target) > 2:  # its source must hold a text: an upstream version without it
        monkeypatch.setattr(owner, name, _stub)
        expected = f"{target[0]}.{target[1]} no longer holds"
    else:
        monkeypatch.delattr(owner, name)
        expected = f"{target[0]}.{target[1]} is missing"
    with pytest.raises(upstream.UpstreamChanged) as raised:
        upstream.check_upstream()
    assert expected in str(raised.value)
    assert str(raised.value).startswith("not serving the guide: ")


def test_install_stops_before_patching_anything(monkeypatch):
    import voila.tornado.kernel_websocket_handler as kernel_ws
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    monkeypatch.setattr(voila_host, "_INSTALLED", False)
    monkeypatch.delattr(MappingKernelManager, "_kernel_connections")
    before = kernel_ws.read_header_from_binary_message
    with pytest.raises(upstream.UpstreamChanged, match="MappingKernelManager._kernel_connections"):
        voila_host.install()
    assert not voila_host._INSTALLED
    assert kernel_ws.read_header_from_binary_message is before


def private_reads(source: str) -> set[str]:
    """Private names a module's code reads from other objects: ``x._name`` attributes,
    ``getattr(x, "_name")`` and ``from a._b import``; minus what the code itself defines
    (``self._name = ...``, a class's or the module's own ``_name``)."""
    tree = ast.parse(source)
    read: set[str] = set()
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            (own if isinstance(node.ctx, ast.Store) else read).add(node.attr)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value).startswith("_"):
            read.add(node.args[1].value)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            read.update(part for part in node.module.split(".")
                        if part.startswith("_") and not part.startswith("__"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            own.update(t.id for t in targets if isinstance(t, ast.Name))
    return read - own


def test_the_scan_finds_a_private_read():
    found = private_reads("def f(handler):\n    self._mine = 1\n    return handler._secret, "
                          "getattr(handler, '_other', None), self._mine\n"
                          "from pkg._private import x\n")
    assert found == {"_secret", "_other", "_private"}


def test_every_private_attribute_the_hooks_read_is_checked_at_start():
    covered: set[str] = set()
    for target in upstream.UPSTREAM_TARGETS:
        module_name, path, *texts = target
        covered.update(module_name.split("."), path.split("."))
        for text in texts:
            covered.update(word.strip("(=: ") for word in text.replace(".", " ").split())
    own = set()
    sources = {}
    for path in sorted(HOOKS.glob("*.py")):
        if path.name in KERNEL_SIDE:
            continue
        sources[path.name] = path.read_text(encoding="utf-8")
        tree = ast.parse(sources[path.name])
        own.update(node.name for node in ast.walk(tree)
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
        own.update(t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   for t in node.targets if isinstance(t, ast.Name))
    # names the hooks define in one module and use in another (self._pool_ids set in one
    # method, read in another) are their own too
    own.update(name for source in sources.values() for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
               for name in [node.attr])
    own.update(name for source in sources.values() for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute)
               for name in [node.target.attr])
    unchecked = {name: file for file, source in sources.items()
                 for name in private_reads(source) if name not in own | covered}
    assert not unchecked, f"private upstream attributes read but not in UPSTREAM_TARGETS: {unchecked}"
    # the seven private reads known today, each covered by a target
    assert {"_cache", "_waiters", "_kernels", "_kernel_connections", "_tz", "_write_buffer",
            "get_rendered_notebook"} <= covered


def test_the_source_checks_read_the_installed_upstream():
    for module_name, path, *texts in upstream.UPSTREAM_TARGETS:
        if texts:
            owner, name = _owner_and_name((module_name, path))
            source = inspect.getsource(getattr(owner, name))
            assert all(text in source for text in texts), (module_name, path)
