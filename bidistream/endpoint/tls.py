"""A throw-away local CA and a server certificate for 127.0.0.1/localhost, and the server's TLS context."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_LIFETIME = datetime.timedelta(days=7)  # long enough for a working week; regenerated on every start


@dataclass(frozen=True)
class CertificateFiles:
    """Where the CA (for clients: ``--ca-file``) and the server's certificate and key were written."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def default_cert_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bidistream" / "local-endpoint"


def generate_certificates(cert_dir: Path, hostnames: tuple[str, ...] = ("localhost",)) -> CertificateFiles:
    """Create a fresh CA and a server certificate it signs, for ``hostnames`` and 127.0.0.1 / ::1."""
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not cert_dir.stat().st_mode & stat.S_ISVTX:  # never narrow a shared sticky dir such as /tmp
        cert_dir.chmod(0o700)  # mkdir's mode does not apply to a directory that already existed
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bidistream local endpoint CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    alt_names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = CertificateFiles(
        ca_file=cert_dir / "ca.pem", cert_file=cert_dir / "server.pem", key_file=cert_dir / "server-key.pem"
    )
    _write(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.cert_file, server_cert.public_bytes(serialization.Encoding.PEM))
    _write(
        files.key_file,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    return files


def server_ssl_context(files: CertificateFiles) -> ssl.SSLContext:
    """TLS 1.2+ offering only ALPN ``h2``, as the runtime's :8443 endpoint does."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    context.set_alpn_protocols(["h2"])
    return context


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    # Write then rename, so a client never reads half a certificate.
    # The file is created with its final mode (a key is never readable by others, not even briefly),
    # and O_EXCL refuses to follow a planted symlink; a temporary file left by a crash is removed.
    temporary = path.with_suffix(path.suffix + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(temporary, mode)  # the umask may have narrowed the mode os.open applied
    temporary.replace(path)
