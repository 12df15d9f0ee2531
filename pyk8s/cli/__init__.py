"""Command line: `pyk8s server`, `pyk8s apiserver`, `pyk8s kubectl`."""
