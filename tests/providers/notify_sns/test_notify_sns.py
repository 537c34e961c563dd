"""SNS notifier plug-in: publishes to the topic named by ``sns://<ARN>`` (moto in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from agent.errors import ConfigError, ProviderUnavailable
from agent.notify.base import Notification, load_notifier
from providers.notify_sns.client import SnsNotifier, parse_topic_arn


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def _queue_for(topic_arn: str) -> str:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name="us-east-1").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn
    )
    return url


def test_publishes_subject_and_json_payload_to_the_topic(aws: None) -> None:
    topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="cw")["TopicArn"]
    queue = _queue_for(topic)
    notifier = load_notifier(f"sns://{topic}")

    notifier.send(
        Notification(
            subject="chipwarden: 1 flagged", text="t", payload={"findings": [{"id": "f1"}]}
        )
    )

    (message,) = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10
    )["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == "chipwarden: 1 flagged"
    assert json.loads(envelope["Message"])["findings"] == [{"id": "f1"}]


def test_a_missing_topic_is_an_unavailable_provider_error(aws: None) -> None:
    notifier = SnsNotifier("sns://arn:aws:sns:us-east-1:123456789012:nope")

    with pytest.raises(ProviderUnavailable, match="nope"):
        notifier.send(Notification(subject="s", text="t"))


@pytest.mark.parametrize(
    "url", ["sns://topic", "sns://arn:aws:sqs:us-east-1:123456789012:q", "sns://arn:aws:sns:x"]
)
def test_anything_but_a_topic_arn_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="sns://<topic ARN>"):
        parse_topic_arn(url)


def test_the_region_comes_from_the_arn() -> None:
    assert parse_topic_arn("sns://arn:aws:sns:eu-west-1:123456789012:t") == (
        "arn:aws:sns:eu-west-1:123456789012:t",
        "eu-west-1",
    )
