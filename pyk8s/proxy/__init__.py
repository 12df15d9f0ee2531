"""kube-proxy for pyk8s: Services as nftables rules.

Layer rule: ``pyk8s.proxy`` imports only ``pyk8s.api`` and ``pyk8s.client``.
Modules:

- ``serviceports``: Service -> ``ServicePort`` per port and IP family
- ``endpoints``: EndpointSlices -> endpoints per service port; traffic-policy choice
- ``rules``: pure rendering of the ``ip pyk8s`` table and full/partial transactions
- ``nft``: the ``nft -f`` seam (real command, optionally in a netns; in-memory fake)
- ``proxier``: event handlers, the rate-limited sync loop, latency metrics
- ``metrics``: upstream kube-proxy's metric names on a private registry
- ``health``: the proxier's /healthz and /livez, per-Service healthCheckNodePort servers
- ``server``: informers wired to the proxiers (``pyk8s proxy``)
- ``servicelb``: LoadBalancer ingress = the nodes' addresses (k3s ServiceLB)
"""
