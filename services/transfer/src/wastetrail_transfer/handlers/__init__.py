"""Commands and events → domain → unit of work.

- `stations`, `weighing`, `batches`: what station operators and admins do over HTTP;
- `projections`: what the station learns from collection's and treatment's events;
- `alarms`: the sweep that raises custody alerts on a clock;
- `common`: reconciliation, alerts and trip locking shared by all of them;
- `views`: read models for the HTTP API.
"""
