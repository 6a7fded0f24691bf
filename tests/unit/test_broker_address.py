"""The one parser of broker addresses: kafka://host:port or host:port, one or a comma-separated list."""
from __future__ import annotations

import pytest

from streams.settings import BrokerAddressError, bootstrap_servers, parse_broker


@pytest.mark.parametrize("given,servers", [
    ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
    ("127.0.0.1:9092", ["127.0.0.1:9092"]),
    ("KAFKA://h:1", ["h:1"]),
    ("kafka://a:1,b:2", ["a:1", "b:2"]),
    (" kafka://a:1 , kafka://b:2 ", ["a:1", "b:2"]),
    ("a:1;kafka://b:2", ["a:1", "b:2"]),  # Faust's own list separator
])
def test_accepted_addresses(given, servers):
    assert bootstrap_servers(given) == servers
    host, _, port = servers[0].rpartition(":")
    assert parse_broker(given)[0] == (host, int(port))


@pytest.mark.parametrize("given", ["http://h:1", "https://h:1", "kafka://a:1,http://b:2", "ssl://h:1", "h", "kafka://h",
                                   "h:0", "h:65536", "h:port", "kafka://h:1/", ":9092", "", " , ", "kafka://user@h:1"])
def test_refused_addresses(given):
    with pytest.raises(BrokerAddressError):
        bootstrap_servers(given)
    with pytest.raises(BrokerAddressError):
        parse_broker(given)
