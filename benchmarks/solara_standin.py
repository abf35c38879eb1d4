"""The guide as a Solara app, for the benchmarks and the cluster until the guide's own Solara
host module exists (``deploy/cluster.py``'s ``SOLARA_APP`` names the one they run)::

    solara run benchmarks/solara_standin.py --host 127.0.0.1 --port 8876 --production

Each visitor's virtual kernel renders :func:`Page` once: its own guide, built from the page's
link (``?lang=``, ``?step=``, ``?followup=``, checked by :func:`widgets.app.guide` as under
Voilà). The log follows the environment (``GUIDE_LOG``, ``GUIDE_LOG_URL``), as under Voilà.

The guide's kernel check imports ``ipykernel.kernelapp``; importing ipykernel's kernel module
replaces ``comm.create_comm`` and ``comm.get_comm_manager``, which Solara had pointed at the
visitor's virtual kernel. Widgets made after that would register their comms with ipykernel's
global manager: the page would show them, but no click would reach them. So ipykernel is
imported first and Solara's two functions are put back.
"""

from urllib.parse import parse_qs

import comm

_create, _manager = comm.create_comm, comm.get_comm_manager
import ipykernel.kernelapp  # noqa: E402,F401

comm.create_comm, comm.get_comm_manager = _create, _manager

import solara  # noqa: E402

import widgets.app  # noqa: E402


@solara.component
def Page():  # noqa: N802 - the name Solara looks for
    search = solara.use_router().search or ""

    def build():
        query = {key: values[0] for key, values in parse_qs(search).items()}
        return widgets.app.guide(lang=query.get("lang"), step=query.get("step"),
                                 followup=query.get("followup"))

    solara.display(solara.use_memo(build, []))
