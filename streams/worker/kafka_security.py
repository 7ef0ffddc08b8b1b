"""TLS and SASL options for every Kafka client the service makes, from the one Settings.

Three client libraries take the same security settings in three shapes: Faust wants a
credentials object, aiokafka an ``ssl.SSLContext`` beside its SASL keyword arguments, and
kafka-python file names. Building all three here, from Settings already checked by
``Settings.__post_init__``, keeps the worker from reaching one client securely and another
one not. PLAINTEXT (the default) gives no options at all, so an unsecured cluster sees the
clients exactly as before.
"""

import ssl
from typing import TYPE_CHECKING, Any

from schemas.exceptions import PropensityError
from streams.worker.settings import SASL_PROTOCOLS, TLS_PROTOCOLS, Settings, env_name

if TYPE_CHECKING:
    from faust.auth import SASLCredentials, SSLCredentials

DEFAULT_SASL_MECHANISM = "PLAIN"
_TLS_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


class KafkaSecurityError(PropensityError):
    """The TLS files named in the settings cannot be loaded (not PEM, wrong key password)."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (None otherwise), as kafka-python builds it."""
    if settings.security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        # No cafile: the system's CAs, as kafka-python does without ssl_cafile.
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = settings.ssl_check_hostname  # the chain is verified either way
        if settings.ssl_certfile:
            context.load_cert_chain(
                settings.ssl_certfile,
                settings.ssl_keyfile or None,
                password=settings.ssl_key_password or None,
            )
    except (ssl.SSLError, OSError) as exc:
        files = [
            f"{env_name(n)}={getattr(settings, n)}" for n in _TLS_FILES if getattr(settings, n)
        ]
        raise KafkaSecurityError(
            f"cannot load the TLS files ({', '.join(files) or 'system CAs'}): {exc}"
        ) from None
    return context


def sasl_mechanism(settings: Settings) -> str:
    """The configured SASL mechanism, PLAIN when unset (Kafka's own default)."""
    return settings.sasl_mechanism or DEFAULT_SASL_MECHANISM


def faust_credentials(settings: Settings) -> "SSLCredentials | SASLCredentials | None":
    """``broker_credentials`` for faust.App: Faust's aiokafka driver turns them into the same
    options as ``aiokafka_options`` for its consumer, producer and topic creation."""
    from faust.auth import SASLCredentials, SSLCredentials  # imports faust: keep --help fast

    protocol = settings.security_protocol
    context = ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        # With an ssl_context the credentials' protocol is SASL_SSL, without it SASL_PLAINTEXT.
        return SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=context,
            mechanism=sasl_mechanism(settings),
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        options.update(
            sasl_mechanism=sasl_mechanism(settings),
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (KafkaAdminClient): file names, not a context."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options.update(
            ssl_cafile=settings.ssl_cafile or None,
            ssl_certfile=settings.ssl_certfile or None,
            ssl_keyfile=settings.ssl_keyfile or None,
            ssl_password=settings.ssl_key_password or None,
            ssl_check_hostname=settings.ssl_check_hostname,
        )
    if protocol in SASL_PROTOCOLS:
        options.update(
            sasl_mechanism=sasl_mechanism(settings),
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options
