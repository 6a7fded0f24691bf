"""Kafka authentication from the LOYALTY_KAFKA_* variables, as Faust, kafka-python and aiokafka each want it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

#: Read by every command that talks to Kafka (listed in the README and in `loyalty worker --help`).
KAFKA_AUTH_ENV = {
    "LOYALTY_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL",
    "LOYALTY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN",
    "LOYALTY_KAFKA_SASL_USERNAME": "the SASL user",
    "LOYALTY_KAFKA_SASL_PASSWORD": "the SASL password",
    "LOYALTY_KAFKA_SSL_CAFILE": "CA file that signed the broker's certificate (default: the system's)",
}
PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaAuthError(ValueError):
    """The LOYALTY_KAFKA_* variables do not describe a usable connection."""


@dataclass(frozen=True)
class KafkaAuth:
    """How to authenticate to the brokers; the password never appears in a repr."""
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    ssl_cafile: Optional[str] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "KafkaAuth":
        """Read and check the LOYALTY_KAFKA_* variables (KafkaAuthError if they do not fit together)."""
        def get(name: str) -> Optional[str]:
            return env.get(f"LOYALTY_KAFKA_{name}") or None
        auth = cls(protocol=(get("SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
                   mechanism=(get("SASL_MECHANISM") or "SCRAM-SHA-512").upper(),
                   username=get("SASL_USERNAME"), password=get("SASL_PASSWORD"), ssl_cafile=get("SSL_CAFILE"))
        if auth.protocol not in PROTOCOLS:
            raise KafkaAuthError(f"LOYALTY_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
        if auth.mechanism not in MECHANISMS:
            raise KafkaAuthError(f"LOYALTY_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}")
        if auth.sasl and not (auth.username and auth.password):
            raise KafkaAuthError(f"{auth.protocol} needs LOYALTY_KAFKA_SASL_USERNAME and LOYALTY_KAFKA_SASL_PASSWORD")
        return auth

    @property
    def sasl(self) -> bool:
        """True when the brokers want a SASL login."""
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """True when the connection is encrypted."""
        return self.protocol in ("SSL", "SASL_SSL")

    def _common(self) -> dict[str, Any]:
        """The option names kafka-python and aiokafka share."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        return options

    def kafka_python_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        options = self._common()
        if self.tls and self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's consumers and producers."""
        options = self._common()
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> Any:
        """A TLS context that verifies the broker (against ssl_cafile when given)."""
        import ssl  # here: only TLS needs it, and `loyalty --help` imports this module (ssl is slow to import)
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def faust_credentials(self) -> Any:
        """Faust's broker_credentials (None for PLAINTEXT)."""
        import faust  # here: only the worker loads Faust, and the CLI imports this module for its help
        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password, mechanism=self.mechanism,
                                         ssl_context=self.ssl_context() if self.tls else None)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def kafka_python_options() -> dict[str, Any]:
    """kafka-python's authentication options from the environment."""
    return KafkaAuth.from_env().kafka_python_options()


def aiokafka_options() -> dict[str, Any]:
    """aiokafka's authentication options from the environment."""
    return KafkaAuth.from_env().aiokafka_options()
