"""Self-signed certificates made by a test, for servers on ssl: endpoints."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    """A private key and its certificate, each in a PEM file."""

    key: Path
    certificate: Path


def _subject_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(*names: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate valid for a day for names (host names or addresses), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([_subject_name(name) for name in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def pem(certificate: x509.Certificate) -> bytes:
    """The certificate in PEM form."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_certificate(directory: Path) -> CertificateFiles:
    """Write a key and a certificate valid for 127.0.0.1 and localhost into directory."""
    certificate, key = self_signed("127.0.0.1", "localhost")
    files = CertificateFiles(directory / "key.pem", directory / "cert.pem")
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.certificate.write_bytes(pem(certificate))
    return files


def tls_endpoint(certificate: CertificateFiles) -> str:
    """The --port of a TLS server on a free port of 127.0.0.1, with this key and certificate."""
    return (
        f"ssl:0:interface=127.0.0.1:privateKey={certificate.key}:certKey={certificate.certificate}"
    )
