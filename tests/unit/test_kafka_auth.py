"""LOYALTY_KAFKA_* reach every Kafka client of the project as each one wants them."""
from __future__ import annotations

import ssl

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.app import faust_settings
from streams.kafka_auth import KafkaAuth, KafkaAuthError
from streams.settings import Settings

SCRAM = {"LOYALTY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "LOYALTY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
         "LOYALTY_KAFKA_SASL_USERNAME": "loyalty", "LOYALTY_KAFKA_SASL_PASSWORD": "pa55word"}


def test_nothing_set_is_plaintext_with_no_option():
    auth = KafkaAuth.from_env({})
    assert auth.kafka_python_options() == {} and auth.aiokafka_options() == {}
    assert auth.faust_credentials() is None


def test_scram_maps_to_kafka_python_aiokafka_and_faust_alike():
    auth = KafkaAuth.from_env(SCRAM)
    expected = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": "loyalty", "sasl_plain_password": "pa55word"}
    assert auth.kafka_python_options() == expected
    assert auth.aiokafka_options() == expected
    credentials = auth.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    # What Faust hands aiokafka for its consumer, producer and admin client.
    assert {k: v for k, v in credentials_to_aiokafka_auth(credentials).items() if v is not None} == expected


def test_sasl_ssl_verifies_the_broker_with_the_ca_file(tmp_path):
    env = {**SCRAM, "LOYALTY_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "LOYALTY_KAFKA_SSL_CAFILE": "/etc/ca.pem"}
    auth = KafkaAuth.from_env(env)
    assert auth.kafka_python_options()["ssl_cafile"] == "/etc/ca.pem"
    assert auth.kafka_python_options()["security_protocol"] == "SASL_SSL"
    with pytest.raises(FileNotFoundError):  # the CA file is read: a wrong path fails, never skips verification
        auth.aiokafka_options()
    context = KafkaAuth.from_env({"LOYALTY_KAFKA_SECURITY_PROTOCOL": "SSL"}).aiokafka_options()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_the_default_mechanism_is_scram_sha_512():
    env = {k: v for k, v in SCRAM.items() if k != "LOYALTY_KAFKA_SASL_MECHANISM"}
    assert KafkaAuth.from_env(env).kafka_python_options()["sasl_mechanism"] == "SCRAM-SHA-512"


@pytest.mark.parametrize("change, message", [
    ({"LOYALTY_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL"),
    ({"LOYALTY_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM"),
    ({"LOYALTY_KAFKA_SASL_PASSWORD": ""}, "SASL_PASSWORD"),
    ({"LOYALTY_KAFKA_SASL_USERNAME": ""}, "SASL_USERNAME"),
])
def test_settings_that_do_not_fit_are_refused(change, message):
    with pytest.raises(KafkaAuthError, match=message):
        KafkaAuth.from_env({**SCRAM, **change})


def test_the_password_is_never_in_a_repr():
    assert "pa55word" not in repr(KafkaAuth.from_env(SCRAM))
    assert "pa55word" not in repr(KafkaAuth.from_env(SCRAM).faust_credentials())


def test_the_worker_gives_faust_the_credentials(monkeypatch, tmp_path):
    for name, value in SCRAM.items():
        monkeypatch.setenv(name, value)
    conf = faust_settings(Settings(data_dir=tmp_path))
    assert isinstance(conf["broker_credentials"], faust.SASLCredentials)
    assert conf["broker_credentials"].username == "loyalty"


def test_every_kafka_client_the_project_opens_gets_the_options():
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    clients = {"KafkaAdminClient", "KafkaProducer", "KafkaConsumer", "AIOKafkaConsumer", "AIOKafkaProducer"}
    seen = []
    for path in [*root.glob("streams/*.py"), *root.glob("tools/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in clients:
                spread = [k.value for k in node.keywords if k.arg is None]
                names = {getattr(v.func, "id", None) for v in spread if isinstance(v, ast.Call)}
                seen.append((path.name, node.lineno))
                assert names & {"kafka_python_options", "aiokafka_options"}, f"{path.name}:{node.lineno}"
    assert len(seen) >= 6, seen
