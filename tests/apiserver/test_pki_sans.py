"""The API server's serving certificate follows its SANs: a new --tls-san or a changed
node address issues it again on the next start (same CA); an unchanged set keeps it."""
import os
import socket
import ssl
import stat

from cryptography import x509

from pyk8s.pki import cert_sans, ensure_server_tls
from support.cluster import Cluster, free_port


def test_serving_certificate_is_reissued_when_sans_change(tmp_path):
    d = str(tmp_path)
    first = ensure_server_tls(d, hosts=("127.0.0.1", "192.0.2.10"))
    assert "IP:192.0.2.10" in cert_sans(first.serving.cert_pem)
    again = ensure_server_tls(d, hosts=("127.0.0.1", "192.0.2.10"))
    assert again.serving == first.serving  # unchanged settings: the same certificate
    moved = ensure_server_tls(d, hosts=("127.0.0.1", "192.0.2.11", "api.example.test"))
    sans = cert_sans(moved.serving.cert_pem)
    assert {"IP:192.0.2.11", "DNS:api.example.test", "DNS:kubernetes.default.svc",
            "IP:10.43.0.1", "IP:127.0.0.1"} <= sans
    assert "IP:192.0.2.10" not in sans
    assert moved.ca == first.ca and moved.admin == first.admin
    cert = x509.load_pem_x509_certificate(moved.serving.cert_pem)
    assert cert.issuer == x509.load_pem_x509_certificate(first.ca.cert_pem).subject
    key = moved.serving_files[1]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with open(moved.serving_files[0], "rb") as f:
        assert f.read() == moved.serving.cert_pem


def _served_sans(port: int, ca_file: str) -> set[str]:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName))


def test_new_tls_san_is_served_after_restart(tmp_path):
    c = Cluster(str(tmp_path), free_port())
    ca = os.path.join(str(tmp_path), "server", "tls", "server-ca.crt")
    c.start()
    try:
        assert "api.example.test" not in _served_sans(c.port, ca)
        c.stop()
        c.start(extra=["--tls-san", "api.example.test"])
        assert "api.example.test" in _served_sans(c.port, ca)
        assert c.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    finally:
        c.stop()
