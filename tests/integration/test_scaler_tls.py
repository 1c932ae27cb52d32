"""TLS and mTLS on the scaler's gRPC port, with certificates made in the test.

Covers: a TLS client that trusts the CA is served; under mTLS a client presenting a
certificate signed by the client CA is served and a client without one is refused; a
plaintext client cannot talk to a TLS port; the CLI settings refuse half a TLS config.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scaler.settings import ScalerSettings
from tests.scaler_support import desired, ref, register, running_scaler, scaler_stub

PEM = serialization.Encoding.PEM


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, as PEM files."""
    out = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("oasis-keda test CA", ca_key, None, ca=True)
    files: dict[str, bytes] = {"ca.pem": ca.public_bytes(PEM)}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"oasis-keda {role}", key, (ca.subject, ca_key), server=role == "server")
        files[f"{role}.pem"] = cert.public_bytes(PEM)
        files[f"{role}.key"] = _key_pem(key)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return {name.replace(".", "_"): out / name for name in files}


def tls_fields(pki: dict[str, Path], *, mtls: bool) -> dict[str, str]:
    fields = {"tls_cert": str(pki["server_pem"]), "tls_key": str(pki["server_key"])}
    if mtls:
        fields["tls_client_ca"] = str(pki["ca_pem"])
    return fields


def client_credentials(pki: dict[str, Path], *, with_cert: bool) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki["ca_pem"].read_bytes(),
        private_key=pki["client_key"].read_bytes() if with_cert else None,
        certificate_chain=pki["client_pem"].read_bytes() if with_cert else None,
    )


async def test_tls(redis_url: str, redis_client: redis.Redis, pki: dict[str, Path]) -> None:
    register(redis_client, "m")
    async with running_scaler(redis_url, **tls_fields(pki, mtls=False)) as server:
        creds = client_credentials(pki, with_cert=False)
        async with scaler_stub(server.port, creds) as stub:
            assert await desired(stub, "m") == 0
        async with scaler_stub(server.port) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await plaintext.IsActive(ref("m"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_client_certificate(
    redis_url: str, redis_client: redis.Redis, pki: dict[str, Path]
) -> None:
    register(redis_client, "m")
    async with running_scaler(redis_url, **tls_fields(pki, mtls=True)) as server:
        async with scaler_stub(server.port, client_credentials(pki, with_cert=True)) as stub:
            assert (await stub.IsActive(ref("m"))).result is False
        async with scaler_stub(server.port, client_credentials(pki, with_cert=False)) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.IsActive(ref("m"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_half_a_tls_configuration_is_refused(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="together"):
        ScalerSettings(tls_cert=str(pki["server_pem"]))
