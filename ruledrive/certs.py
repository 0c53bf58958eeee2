"""A private CA and the broker's TLS certificate (``cryptography``), for the secure deployment.

ECDSA P-256 keys; the CA may sign end-entity certificates only (path length 0); the server
certificate names every host or address clients use in its subjectAltName (the client checks
the host name in the broker URL against it) and is for server authentication only. Both carry
key identifiers so strict verifiers (OpenSSL's X509_STRICT, Python 3.13's default) accept them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import ConfigError

__all__ = [
    "MAX_DAYS",
    "cert_pem",
    "check_lifetimes",
    "issue_server_cert",
    "key_pem",
    "make_ca",
    "subject_alt_names",
]

_BACKDATE = dt.timedelta(minutes=5)  # a client whose clock is a little behind still accepts it
# A certificate's lifetime in days at most (a century); far larger ones overflow datetime.
MAX_DAYS = 36500


def check_lifetimes(days: int, ca_days: int) -> None:
    """ConfigError unless both lifetimes are within 1..MAX_DAYS days and the server certificate
    (``days``) ends no later than its CA (``ca_days``): clients would reject it after that."""
    for flag, value in (("--days", days), ("--ca-days", ca_days)):
        if not 1 <= value <= MAX_DAYS:
            raise ConfigError(f"{flag} must be a whole number within 1..{MAX_DAYS}, got {value}")
    if days > ca_days:
        raise ConfigError(
            f"--days {days}: the server certificate would outlive its CA (--ca-days {ca_days}); "
            "give it at most the CA's lifetime"
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ruledrive"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    common_name: str = "ruledrive broker CA", days: int = 1825
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed CA: (private key, certificate); ConfigError for a lifetime outside
    1..MAX_DAYS."""
    check_lifetimes(days, days)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses, as the certificate lists them; ConfigError on an empty list
    or a name with a character a host name cannot have."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip()
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not host or not all(c.isalnum() or c in "-." for c in host):
            raise ConfigError(f"--hosts: {host!r} is not a host name or an IP address")
        names.append(x509.DNSName(host))
    if not names:
        raise ConfigError("--hosts: the broker certificate needs at least one host name")
    return names


def issue_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[str],
    days: int = 397,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The broker's key and certificate, signed by the CA, valid for ``hosts``; ConfigError for
    a lifetime outside 1..MAX_DAYS or one that ends after the CA's."""
    sans = subject_alt_names(hosts)
    check_lifetimes(days, days)
    now = dt.datetime.now(dt.UTC)
    end, ca_end = now + dt.timedelta(days=days), ca_cert.not_valid_after_utc
    if end - ca_end > dt.timedelta(hours=1):  # within an hour: a CA made moments before
        raise ConfigError(
            f"--days {days}: the server certificate would outlive its CA "
            f"(valid until {ca_end:%Y-%m-%d})"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0].strip()))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(end, ca_end))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: Mosquitto reads the key file without a passphrase."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
