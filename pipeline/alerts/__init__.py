"""Closed-loop alerting after delivery (issue #14 item 2): acknowledgement by ``ctdna ack``
and by a signed single-use link (:mod:`pipeline.alerts.signing`, the HTTP endpoint
:mod:`pipeline.alerts.server`), escalation of unacknowledged FAILURE alerts
(:mod:`pipeline.alerts.escalation`). State lives in the append-only ``alert_events`` table;
its SQL is in :mod:`pipeline.store.alerts`. See docs/notifications.md.

Import the submodules directly; this package imports nothing so that ``ctdna ack`` stays fast.
"""
