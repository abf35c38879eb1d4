"""The guide's widget view without a browser: widget models on the first page, and the cost of
a click (time, comm messages sent to the page, Python calls in the guide's own modules) over a
walk of many clicks.

    python benchmarks/view_bench.py [--clicks 200] [--repeat 5]

Every click is one a visitor could make: the first option of a decision (buttons, or the
dropdown's first option then Continue), Next on an information step, Start over at the end.
The guide's events go to a sink that takes them and does nothing (``record_many``), so the
cost of making them is counted and the cost of a store is not. Python calls are counted with
``sys.setprofile`` ('call' events whose code is in widgets/), over one more walk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import comm  # noqa: E402
import ipywidgets.widgets.widget as ww  # noqa: E402

SENT = [0]


class CountingComm(comm.base_comm.BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        SENT[0] += 1


comm.create_comm = lambda *a, **k: CountingComm(*a, **k)

import widgets  # noqa: E402
from widgets.view import GuideView  # noqa: E402

WIDGETS_DIR = os.path.dirname(widgets.__file__) + os.sep


class NoSink:
    """Takes the events of each interaction together, and does nothing with them."""

    def record_many(self, events) -> bool:
        return True

    def record(self, event) -> bool:  # a sink taking one event at a time (an older view)
        return True


def first_page() -> tuple[GuideView, int, int]:
    before = set(ww._instances)
    SENT[0] = 0
    view = GuideView(lang="ko", sink=NoSink()).start()
    return view, len(set(ww._instances) - before), SENT[0]


def python_calls(clicks: int) -> tuple[float, int]:
    """Python calls in widgets/ per click over ``clicks`` clicks, and the modules they were in."""
    view = GuideView(lang="ko", sink=NoSink()).start()
    files: Counter[str] = Counter()

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code.co_filename.startswith(WIDGETS_DIR):
            files[frame.f_code.co_filename] += 1

    sys.setprofile(profile)
    try:
        for _ in range(clicks):
            click_once(view)
    finally:
        sys.setprofile(None)
    return sum(files.values()) / clicks, len(files)


def click_once(guide: GuideView) -> None:
    node = guide.engine.node
    view = getattr(guide, "step_view", guide)  # the step's controls (on GuideView before)
    if node.kind == "choice" and node.widget == "dropdown":
        view.dropdown.value = node.options[0].id
        view.continue_button.click()
    elif node.kind == "choice":
        next(b for b in view.option_buttons if b.layout.display != "none").click()
    elif node.kind == "info":
        view.next_button.click()
    else:
        guide.restart_button.click()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _, models, messages = first_page()
    runs, sent = [], []
    for _ in range(args.repeat):
        view = GuideView(lang="ko", sink=NoSink()).start()
        SENT[0] = 0
        began = time.perf_counter()
        for _ in range(args.clicks):
            click_once(view)
        runs.append((time.perf_counter() - began) / args.clicks * 1000)
        sent.append(SENT[0] / args.clicks)
    calls, modules = python_calls(args.clicks)
    print(f"first page: {models} widget models, {messages} comm messages")
    print(f"per click over {args.clicks} clicks, {args.repeat} runs: median "
          f"{statistics.median(runs):.3f} ms (min {min(runs):.3f}), "
          f"{statistics.median(sent):.2f} comm messages, "
          f"{calls:.1f} Python calls in widgets/ (in {modules} modules)")


if __name__ == "__main__":
    main()
