"""The guide as a Solara app, for the benchmarks and the cluster until the guide's own Solara
host module exists (``deploy/cluster.py``'s ``SOLARA_APP`` names the one they run)::

    solara run benchmarks/solara_standin.py --host 127.0.0.1 --port 8876 --production

Solara runs this file once per visitor: each visitor's virtual kernel gets its own guide.

The guide's kernel check imports ``ipykernel.kernelapp``; importing ipykernel's kernel module
replaces ``comm.create_comm`` and ``comm.get_comm_manager``, which Solara had pointed at the
visitor's virtual kernel. Widgets made after that would register their comms with ipykernel's
global manager: the page would show them, but no click would reach them. So ipykernel is
imported first and Solara's two functions are put back.
"""

import comm

_create, _manager = comm.create_comm, comm.get_comm_manager
import ipykernel.kernelapp  # noqa: E402,F401

comm.create_comm, comm.get_comm_manager = _create, _manager

import widgets.app  # noqa: E402

page = widgets.app.guide(log=False)
