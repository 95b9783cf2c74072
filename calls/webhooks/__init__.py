"""Vonage's webhooks: the edge of the system, where every request is treated as coming
from the internet until Vonage's signature and ours say otherwise.

- ``views``: the four routes as DRF views (verify, parse, dispatch, write once);
- ``auth``, ``signatures``, ``replay``: Vonage's signature, good for one request;
- ``callback_urls``: our own signed parameters on the URLs we hand Vonage;
- ``serializers``, ``openapi``: what Vonage may send, and its description;
- ``spool``: what they received while the database was unreachable, or shed;
- ``overload``: a caller's answer shed past capacity, and its conversation's events with it.

Nothing is imported here, so that the flow modules can import ``callback_urls`` without
loading the views (which import the flow).
"""
