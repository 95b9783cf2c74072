"""Calls: what Vonage tells us, what we decide, what supervisors read.

Where to look, by concern (each module's docstring says more):

- **The webhooks** (Vonage's requests, the edge of the system): the package ``webhooks``
  (``views``: verify, parse, dispatch; ``auth``, ``signatures``, ``replay``: Vonage's
  signature, one request per token; ``callback_urls``: our own signed URL parameters;
  ``serializers`` and ``openapi``: what Vonage may send; ``spool``: what they received while
  the database was away, or shed; ``overload``: answers and their events shed past capacity),
  routed by ``urls``.
- **The call's state machine**: ``services`` (a call answered), ``call_flow`` (what happens
  next: the next agent, the fallback, press 1, hang-ups), ``agent_dispatch`` (the agent
  call off the answer path, the caller's checkpoint), ``pacing`` (the account's calls per
  second), ``events`` (recording what Vonage posts), ``call_records`` (early events, the
  call derived from its legs), ``leg_progress`` and ``outcomes`` (order-proof state),
  ``ncco`` (what callers and agents hear), ``reconcile`` (asking Vonage when events are
  missing), ``database_outage``.
- **The Vonage adapter**: ``vonage_adapter`` (the only module that imports the SDK) and
  ``vonage_setup`` (the application and numbers).
- **Admin and reports**: ``admin``, ``selectors``, ``reports``, ``charts``, ``heatmap``
  (when calls come), ``live_board`` (calls in progress), ``timeline`` (a call's page),
  ``privacy`` (callers' numbers masked), ``spreadsheets`` (inert CSV), ``roles``,
  ``retention``, ``seeding``.
- **What staff add to a call**: ``annotations`` (tags, notes, blocking a spam caller; the
  blocked caller's answer) and ``annotations_admin`` (their forms on a call's page, the
  Tag and BlockedCaller admin).

The TLS fake of Vonage's API and the simulator are development tools, in ``devtools``.
"""
