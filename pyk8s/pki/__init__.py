"""Cluster PKI: a CA made on first start and reused, serving and client certificates,
and kubeconfig files that embed them. Files live under ``<data-dir>/server/tls``."""
from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
import os
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_DAYS = 3650
CERT_DAYS = 365


@dataclass
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(cn: str = "pyk8s-server-ca") -> KeyPair:
    key = _key()
    name = _name(f"{cn}@{int(_now().timestamp())}")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue(ca: KeyPair, cn: str, *, orgs: tuple[str, ...] = (), server: bool = False,
          client: bool = False, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
          days: int = CERT_DAYS) -> KeyPair:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    key = _key()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
             ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    b = (x509.CertificateBuilder().subject_name(_name(cn, orgs))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(_now() - datetime.timedelta(minutes=5))
         .not_valid_after(_now() + datetime.timedelta(days=days))
         .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                      False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                             for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _write(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _load_or_make(directory: str, name: str, make, fits=None) -> KeyPair:
    """The pair stored as ``name``, or a new one from ``make()`` when there is none or
    the stored one does not satisfy ``fits(pair)`` (e.g. its SANs changed)."""
    crt, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    if os.path.exists(crt) and os.path.exists(key):
        with open(crt, "rb") as c, open(key, "rb") as k:
            pair = KeyPair(c.read(), k.read())
        if fits is None or fits(pair):
            return pair
        log.warning("certificate %s does not fit the current settings; issuing it again",
                    name)
    pair = make()
    _write(key, pair.key_pem)
    _write(crt, pair.cert_pem, 0o644)
    return pair


@dataclass
class ServerTLS:
    directory: str
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair

    @property
    def ca_file(self) -> str:
        return os.path.join(self.directory, "server-ca.crt")

    @property
    def serving_files(self) -> tuple[str, str]:
        return (os.path.join(self.directory, "serving-kube-apiserver.crt"),
                os.path.join(self.directory, "serving-kube-apiserver.key"))


def ensure_server_tls(data_dir: str, *, hosts: tuple[str, ...] = ("127.0.0.1",),
                      service_ip: str = "10.43.0.1") -> ServerTLS:
    """The cluster CA and the API server's certificates, made once and reused."""
    d = os.path.join(data_dir, "server", "tls")
    os.makedirs(d, mode=0o700, exist_ok=True)
    ca = _load_or_make(d, "server-ca", make_ca)
    ips = tuple(sorted({"127.0.0.1", service_ip} | {h for h in hosts if _is_ip(h)}))
    dns = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local") + tuple(h for h in hosts if not _is_ip(h))
    want = san_set(dns, ips)
    serving = _load_or_make(d, "serving-kube-apiserver", lambda: issue(
        ca, "kube-apiserver", server=True, dns=dns, ips=ips),
        fits=lambda pair: cert_sans(pair.cert_pem) == want and _signed_by(pair, ca))
    admin = _load_or_make(d, "client-admin", lambda: issue(
        ca, "system:admin", orgs=("system:masters",), client=True))
    return ServerTLS(d, ca, serving, admin)


def san_set(dns, ips) -> set[str]:
    """SANs as comparable strings: ``DNS:name`` and ``IP:address`` (normalised)."""
    return {f"DNS:{d}" for d in dns} | {f"IP:{ipaddress.ip_address(i)}" for i in ips}


def cert_sans(cert_pem: bytes) -> set[str]:
    """The SAN set of a certificate, as san_set writes it."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return san_set(ext.get_values_for_type(x509.DNSName),
                   [str(i) for i in ext.get_values_for_type(x509.IPAddress)])


def _signed_by(pair: KeyPair, ca: KeyPair) -> bool:
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    return cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def kubeconfig(server_url: str, ca: KeyPair, client: KeyPair, *, name: str = "default",
               user: str = "default") -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server_url,
                                                "certificate-authority-data": b64(ca.cert_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(client.cert_pem),
                                          "client-key-data": b64(client.key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name}, sort_keys=False)


def write_kubeconfig(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _write(path, text.encode())
