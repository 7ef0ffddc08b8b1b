"""TLS and SASL reach every Kafka client the service makes; bad combinations are refused.

The embedded Tansu broker has no TLS listener, so a small TLS server stands in for a broker:
it completes the handshake, records the certificate the client presented and closes the
connection. The client then fails to bootstrap, which is all these tests need: a client built
without the TLS options never completes a handshake, one without the client certificate
presents none. Certificates come from the `openssl` command (skipped where it is missing).
"""

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP
from faust.types.auth import AuthProtocol, SASLMechanism
from kafka.errors import KafkaTimeoutError

from model.serving.export import load_model
from streams.cli.demo_command import LiveView, _follow
from streams.cli.service_commands import follow
from streams.harness.producer import send_records
from streams.worker.admin import admin_client, ensure_topics
from streams.worker.kafka_security import (
    KafkaSecurityError,
    aiokafka_options,
    faust_credentials,
    kafka_python_options,
    ssl_context,
)
from streams.worker.lag import LagMonitor
from streams.worker.metrics import WorkerMetrics
from streams.worker.service import build_worker, check_partitions
from streams.worker.settings import Settings

KEY_PASSWORD = "key-secret"
SASL_PASSWORD = "sasl-secret"
CLIENT_CN = "propensity-client"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _signed(folder: Path, name: str, cn: str, ca: Path, ca_key: Path, ext: str, *key: str) -> Path:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
    csr, cert, extfile = folder / f"{name}.csr", folder / f"{name}.pem", folder / f"{name}.ext"
    _openssl(
        "req",
        *ec,
        *key,
        "-keyout",
        str(folder / f"{name}.key"),
        "-out",
        str(csr),
        "-subj",
        f"/CN={cn}",
    )
    extfile.write_text(ext)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-out", str(cert), "-extfile", str(extfile),
    )  # fmt: skip
    return cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and an encrypted client key."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=propensity test CA",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    common = "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n"
    server = _signed(
        folder, "server", "localhost", ca, ca_key,
        common + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "-nodes",
    )  # fmt: skip
    client = _signed(
        folder, "client", CLIENT_CN, ca, ca_key, common + "extendedKeyUsage=clientAuth\n",
        "-passout", f"pass:{KEY_PASSWORD}",
    )  # fmt: skip
    return Pki(ca, server, folder / "server.key", client, folder / "client.key")


def _common_name(cert: Any) -> str:
    """The subject's CN of a certificate as ``SSLSocket.getpeercert()`` returns it."""
    names = [value for rdn in cert["subject"] for key, value in rdn if key == "commonName"]
    return str(names[0]) if names else "?"


class TlsStandIn:
    """A TLS listener on 127.0.0.1 that records what each connecting client presented."""

    def __init__(self, pki: Pki) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(pki.ca)
        self.context.verify_mode = ssl.CERT_OPTIONAL  # record a missing client cert, not refuse
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    cert = tls.getpeercert()
                    self.seen.append(f"CN={_common_name(cert)}" if cert else "no certificate")
            except (ssl.SSLError, OSError) as exc:
                self.seen.append(f"no TLS handshake: {exc}")
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def stand_in(pki: Pki) -> Iterator[TlsStandIn]:
    server = TlsStandIn(pki)
    yield server
    server.close()


def tls_settings(pki: Pki, port: int, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": f"127.0.0.1:{port}",
        "security_protocol": "SSL",
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        "ssl_key_password": KEY_PASSWORD,
        "bootstrap_timeout_seconds": 0.5,
        "input_topics": ("t",),
        "partitions": 1,
        "data_dir": tmp_path,
    }
    return Settings(**{**values, **overrides})


# --- options from settings -----------------------------------------------------------------


def test_plaintext_default_gives_no_security_options() -> None:
    settings = Settings()
    assert settings.security_protocol == "PLAINTEXT"
    assert aiokafka_options(settings) == {}
    assert kafka_python_options(settings) == {}
    assert faust_credentials(settings) is None
    assert ssl_context(settings) is None


def test_ssl_options_for_each_client_library(pki: Pki, tmp_path: Path) -> None:
    settings = tls_settings(pki, 9093, tmp_path, security_protocol="ssl")
    assert settings.security_protocol == "SSL"  # normalised
    context = ssl_context(settings)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    options = aiokafka_options(settings)
    assert options.keys() == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert kafka_python_options(settings) == {
        "security_protocol": "SSL",
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        "ssl_password": KEY_PASSWORD,
        "ssl_check_hostname": True,
    }
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SSLCredentials)
    assert credentials.protocol == AuthProtocol.SSL


@pytest.mark.parametrize(
    ("protocol", "mechanism", "faust_protocol"),
    [
        ("SASL_SSL", "SCRAM-SHA-512", AuthProtocol.SASL_SSL),
        ("SASL_PLAINTEXT", "", AuthProtocol.SASL_PLAINTEXT),  # empty mechanism: PLAIN
    ],
)
def test_sasl_options_agree_across_libraries(
    pki: Pki, tmp_path: Path, protocol: str, mechanism: str, faust_protocol: AuthProtocol
) -> None:
    tls = protocol == "SASL_SSL"
    settings = Settings(
        security_protocol=protocol,
        ssl_cafile=str(pki.ca) if tls else "",
        sasl_mechanism=mechanism,
        sasl_username="shop",
        sasl_password=SASL_PASSWORD,
    )
    expected_mechanism = mechanism or "PLAIN"
    sasl = {
        "security_protocol": protocol,
        "sasl_mechanism": expected_mechanism,
        "sasl_plain_username": "shop",
        "sasl_plain_password": SASL_PASSWORD,
    }
    options = aiokafka_options(settings)
    assert isinstance(options.pop("ssl_context", None), ssl.SSLContext) is tls
    assert options == sasl
    python_options = kafka_python_options(settings)
    assert ("ssl_cafile" in python_options) is tls
    assert {k: python_options[k] for k in sasl} == sasl
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == faust_protocol
    assert credentials.mechanism == SASLMechanism(expected_mechanism)
    # What Faust's aiokafka driver gives its consumer and producer equals what ours get.
    from_faust = dict(credentials_to_aiokafka_auth(credentials))
    assert isinstance(from_faust.pop("ssl_context"), ssl.SSLContext) is tls
    assert from_faust == sasl


def test_settings_survive_the_environment_round_trip(pki: Pki, tmp_path: Path) -> None:
    # The demo hands its settings to the worker process as environment variables.
    settings = tls_settings(pki, 9093, tmp_path, ssl_check_hostname=False)
    assert Settings.from_env(settings.to_env()) == settings
    env = {"PROPENSITY_SECURITY_PROTOCOL": "sasl_plaintext", "PROPENSITY_SASL_USERNAME": "u"}
    env |= {"PROPENSITY_SASL_PASSWORD": "p", "PROPENSITY_SASL_MECHANISM": "scram-sha-256"}
    parsed = Settings.from_env(env)
    assert (parsed.security_protocol, parsed.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


def test_secrets_stay_out_of_repr(pki: Pki, tmp_path: Path) -> None:
    settings = tls_settings(
        pki,
        9093,
        tmp_path,
        security_protocol="SASL_SSL",
        sasl_username="shop",
        sasl_password=SASL_PASSWORD,
    )
    assert SASL_PASSWORD not in repr(settings) and KEY_PASSWORD not in repr(settings)
    assert SASL_PASSWORD not in repr(faust_credentials(settings))


def _refusals(pki: Pki) -> list[tuple[dict[str, Any], str]]:
    sasl_user = {"sasl_username": "u", "sasl_password": "p"}
    return [
        ({"security_protocol": "TLS"}, "PROPENSITY_SECURITY_PROTOCOL='TLS' is not one of"),
        ({"sasl_mechanism": "PLAIN"}, "PROPENSITY_SASL_MECHANISM is set but"),
        ({"sasl_username": "u"}, "PROPENSITY_SASL_USERNAME is set but"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"},
            "needs PROPENSITY_SASL_USERNAME and PROPENSITY_SASL_PASSWORD",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", **sasl_user},
            "PROPENSITY_SASL_MECHANISM='GSSAPI' is not one of PLAIN",
        ),
        ({"ssl_cafile": str(pki.ca)}, "PROPENSITY_SSL_CAFILE is set but"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "ssl_certfile": str(pki.client_cert)},
            "does not use TLS",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": str(pki.ca) + ".missing"},
            "PROPENSITY_SSL_CAFILE=",
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": str(pki.client_key)},
            "PROPENSITY_SSL_CERTFILE (the client certificate) is not",
        ),
    ]


def test_bad_combinations_are_refused_in_one_line(pki: Pki) -> None:
    for overrides, message in _refusals(pki):
        with pytest.raises(ValueError) as refused:
            Settings(**overrides)
        assert message in str(refused.value), (overrides, str(refused.value))
        assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="PROPENSITY_SSL_CHECK_HOSTNAME='maybe'"):
        Settings.from_env({"PROPENSITY_SSL_CHECK_HOSTNAME": "maybe"})


def test_a_wrong_key_password_is_one_line_without_the_password(pki: Pki, tmp_path: Path) -> None:
    settings = tls_settings(pki, 9093, tmp_path, ssl_key_password="not-it")
    with pytest.raises(KafkaSecurityError) as refused:
        aiokafka_options(settings)
    message = str(refused.value)
    assert "PROPENSITY_SSL_KEYFILE=" in message and "\n" not in message
    assert "not-it" not in message


# --- the TLS context against a real handshake -----------------------------------------------


def _handshake(context: ssl.SSLContext, port: int, hostname: str) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname),
    ):
        pass


def test_the_context_trusts_the_ca_and_checks_the_hostname(
    pki: Pki, stand_in: TlsStandIn, tmp_path: Path
) -> None:
    settings = tls_settings(pki, stand_in.port, tmp_path)
    context = ssl_context(settings)
    assert context is not None
    _handshake(context, stand_in.port, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(context, stand_in.port, "kafka.example")
    lenient = ssl_context(replace(settings, ssl_check_hostname=False))
    assert lenient is not None
    _handshake(lenient, stand_in.port, "kafka.example")
    # Without the CA file only the system's CAs are trusted: the test CA is not among them.
    system = ssl_context(replace(settings, ssl_cafile=""))
    assert system is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(system, stand_in.port, "localhost")


# --- every client the service makes connects with them ---------------------------------------


async def _publisher(settings: Settings, model: Path) -> None:
    # The worker's own wiring: build_worker -> create_app + register_agents -> BatchPublisher.
    runtime, handler = build_worker(settings, load_model(model), WorkerMetrics())
    assert isinstance(runtime.app.conf.broker_credentials, SSLCredentials)
    try:
        await handler.publisher.start()
    finally:
        await handler.publisher.stop()


async def _lag_monitor(settings: Settings, model: Path) -> None:
    monitor = LagMonitor(settings, WorkerMetrics())
    try:
        await monitor.measure([TP("t", 0)])
    finally:
        await monitor.close()


async def _replay_producer(settings: Settings, model: Path) -> None:
    await send_records(settings, [])


async def _tail_consumer(settings: Settings, model: Path) -> None:
    await follow(settings, "t", from_beginning=True, limit=1, idle_timeout=0)


async def _demo_consumer(settings: Settings, model: Path) -> None:
    await _follow(settings, LiveView(rows=1), asyncio.Event())


AIOKAFKA_CLIENTS: dict[str, Callable[[Settings, Path], Coroutine[Any, Any, None]]] = {
    "worker publisher": _publisher,
    "lag monitor": _lag_monitor,
    "replay producer": _replay_producer,
    "tail consumer": _tail_consumer,
    "demo consumer": _demo_consumer,
}


@pytest.mark.parametrize("client", sorted(AIOKAFKA_CLIENTS))
async def test_aiokafka_clients_present_the_client_certificate(
    pki: Pki, stand_in: TlsStandIn, tmp_path: Path, untrained_model: Path, client: str
) -> None:
    settings = tls_settings(pki, stand_in.port, tmp_path)
    with pytest.raises(KafkaConnectionError):
        await AIOKAFKA_CLIENTS[client](settings, untrained_model)
    assert stand_in.seen and stand_in.seen[0] == f"CN={CLIENT_CN}", stand_in.seen


@pytest.mark.parametrize("client", ["ensure_topics", "check_partitions"])
def test_kafka_python_admin_presents_the_client_certificate(
    pki: Pki, stand_in: TlsStandIn, tmp_path: Path, client: str
) -> None:
    settings = tls_settings(pki, stand_in.port, tmp_path)
    with pytest.raises(KafkaTimeoutError):
        if client == "ensure_topics":
            ensure_topics(settings, ["t"])
        else:
            check_partitions(settings)
    assert stand_in.seen and stand_in.seen[0] == f"CN={CLIENT_CN}", stand_in.seen


def test_plaintext_clients_do_not_speak_tls(pki: Pki, stand_in: TlsStandIn, tmp_path: Path) -> None:
    # The control: without the options neither library completes a handshake.
    plain = Settings(bootstrap_servers=f"127.0.0.1:{stand_in.port}", bootstrap_timeout_seconds=0.5)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(send_records(plain, []))
    with pytest.raises(KafkaTimeoutError):
        admin_client(plain)
    assert stand_in.seen and all(s.startswith("no TLS handshake") for s in stand_in.seen)
