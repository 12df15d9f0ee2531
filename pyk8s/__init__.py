"""pyk8s: Kubernetes, written in Python, speaking the v1.32 API."""
__version__ = "0.1.0"
