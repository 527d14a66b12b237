"""The runtime address the client, the smoke check and the canary stream to, in every AWS partition."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("region", "uri"),
    [
        ("us-east-1", "https://runtime.sagemaker.us-east-1.amazonaws.com:8443"),
        ("eu-west-1", "https://runtime.sagemaker.eu-west-1.amazonaws.com:8443"),
        ("cn-north-1", "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn:8443"),
        ("cn-northwest-1", "https://runtime.sagemaker.cn-northwest-1.amazonaws.com.cn:8443"),
        ("us-gov-west-1", "https://runtime.sagemaker.us-gov-west-1.amazonaws.com:8443"),
        ("eusc-de-east-1", "https://runtime.sagemaker.eusc-de-east-1.amazonaws.eu:8443"),
        ("us-iso-east-1", "https://runtime.sagemaker.us-iso-east-1.c2s.ic.gov:8443"),
    ],
)
def test_runtime_address_uses_the_partitions_dns_suffix(region: str, uri: str) -> None:
    # Imported in each test, not at the top: bidistream.client loads the AWS SDK, which every pytest
    # worker would otherwise import while collecting.
    from bidistream.client import StreamTarget, default_endpoint_uri

    assert default_endpoint_uri(region) == uri
    assert StreamTarget(endpoint_name="e", region=region).uri == uri


def test_an_explicit_endpoint_uri_wins_over_the_partition() -> None:
    from bidistream.client import StreamTarget

    target = StreamTarget(endpoint_name="e", region="cn-north-1", endpoint_uri="https://127.0.0.1:8443")
    assert target.uri == "https://127.0.0.1:8443"


def test_a_region_of_no_known_partition_resolves_in_aws_as_the_sdks_do() -> None:
    from bidistream.client import dns_suffix

    assert dns_suffix("xx-future-1") == "amazonaws.com"
