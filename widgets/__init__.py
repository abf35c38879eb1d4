"""An interactive, bilingual (Korean/English) guide to contacting Amazon customer service.

Modules:
    vocabulary the actions, languages, outcomes and ids that flow, engine, log and summary share
    flow     load and validate the flow content (flow.yaml) into an immutable Flow
    engine   where a visitor is in the flow: pure Python, no widgets
    view     the ipywidgets view of an engine (the only module importing ipywidgets)
    log      the interaction log: event stores (SQLite by default, PostgreSQL when configured)
    summary  the log as pandas tables (the only module importing pandas)
"""
