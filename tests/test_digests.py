"""The hashes the warehouse keys and joins on, against digests computed outside the code
(`printf '<input>' | sha256sum`): a hash that dropped the salt, the normalization or the
canonical form would still equal itself, not these."""

from __future__ import annotations

from drift_pipeline.pii import hash_pii
from drift_pipeline.webhooks.events import event_id

# printf 'test-salt:alice@example.com' | sha256sum
ALICE = "db3923e83ea9914c36dc30f7b83d23f6b14afab6f49f4dbc6f7fea6c8de4b91d"
# printf 'test-salt:12345' | sha256sum
CONTACT_12345 = "2366ad47bcd7e8347f250eb7eb50f84e813c9ae9c702641e742aec152bdbf331"
# printf '%s' '{"data":{"conversationId":42,"status":"closed"},"orgId":7,"type":"conversation_status_updated"}' | sha256sum
STATUS_EVENT = "44757c9d89ac44c0c05411be48a18f9fc6c10e777e0b846b3179ee228dfa1d67"
# printf '%s' '{"data":{"body":"caf\u00e9"},"orgId":7,"type":"new_message"}' | sha256sum
MESSAGE_EVENT = "7dd75695f13a7f7200aaae7757428bf79178a54eade674b9ef2c5516a8e37cf3"


def test_hash_pii_is_the_salted_sha256_of_the_trimmed_lower_cased_value():
    assert hash_pii("alice@example.com", "test-salt") == ALICE
    assert hash_pii("  Alice@Example.COM ", "test-salt") == ALICE
    assert hash_pii(12345, "test-salt") == CONTACT_12345
    assert hash_pii("alice@example.com", "other-salt") != ALICE
    assert hash_pii("", "test-salt") is None and hash_pii(None, "test-salt") is None


def test_event_id_is_the_sha256_of_the_canonical_payload_without_its_token():
    delivered = {"type": "conversation_status_updated", "token": "verification-token",
                 "data": {"status": "closed", "conversationId": 42}, "orgId": 7}
    assert event_id(delivered) == STATUS_EVENT
    assert event_id({"orgId": 7, "type": "new_message", "data": {"body": "café"}}) == MESSAGE_EVENT
