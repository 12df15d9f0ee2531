"""Cluster DNS for pyk8s: ``*.svc.cluster.local`` from Services and EndpointSlices.

Layer rule: ``pyk8s.dns`` imports only ``pyk8s.api`` and ``pyk8s.client``.
Modules:

- ``records``: the cluster zone (pure): A/AAAA/CNAME/SRV/PTR/TXT/SOA/NS answers
- ``forwarding``: upstream resolvers from resolv.conf, UDP with TCP fallback
- ``cache``: TTL-bounded cache of forwarded answers
- ``serving``: the resolver and the UDP/TCP listeners
"""
