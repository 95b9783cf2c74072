"""The webhooks' OpenAPI description (drf-spectacular, served at ``/api/schema/``).

What Vonage may send comes from the input serializers in ``serializers.py``; this module
holds what they cannot say: the answers (an NCCO, the event receipt, the error bodies),
the query-string half of a POSTed answer webhook, and the signature scheme.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from .serializers import MAX_ID, AnswerOutboundSerializer


class AnswerOutboundQuerySerializer(serializers.Serializer):
    """The agent leg's answer URL names the call (``?call=&attempt=``) when Vonage POSTs
    the leg's own fields as the body; the same limits as ``AnswerOutboundSerializer``."""

    call = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    attempt = serializers.IntegerField(min_value=0, max_value=50, required=False)
    sig = serializers.CharField(required=False, help_text="Our signature of the parameters above (callback_urls).")


class AnswerOutboundBodySerializer(AnswerOutboundSerializer):
    """A POSTed agent answer's body: the leg's fields; the call is in the query string."""

    # DRF's way to drop an inherited field.
    call = None  # type: ignore[assignment]
    attempt = None  # type: ignore[assignment]
    sig = None  # type: ignore[assignment]


NCCO = {
    "type": "array",
    "description": "An NCCO: the actions Vonage runs on the call, in order (Vonage's NCCO reference).",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {"action": {"type": "string", "example": "talk"}},
        "required": ["action"],
        "additionalProperties": True,
    },
}

EVENT_RECEIPT = {
    "type": "object",
    "properties": {
        "stored": {"type": "boolean", "description": "False for a redelivery of an event already stored."},
        "kind": {
            "type": "string",
            "enum": ["status", "detection", "record", "input", "transfer", "error", "other"],
        },
    },
    "required": ["stored", "kind"],
}

_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_FIELD_ERRORS = {
    "type": "object",
    "description": "Each field (or non_field_errors) with its messages; `detail` for a body that is not JSON.",
    "additionalProperties": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
}

BAD_REQUEST = OpenApiResponse(_FIELD_ERRORS, description="Malformed input: a required field missing or invalid.")
UNSIGNED = OpenApiResponse(
    _DETAIL,
    description="A Vonage signature that is not valid, too old, or already used for another request.",
)
NOT_OURS = OpenApiResponse(
    _DETAIL,
    description="The URL's own parameters (call, attempt, checkpoint) do not carry our signature: nothing is done.",
)
UNAVAILABLE = OpenApiResponse(
    _DETAIL,
    description=(
        "No signature at all (Vonage retries a 5xx), no signature secret configured on a production server, "
        "or, for events, the event could not be stored; nothing is done."
    ),
)
TOO_LARGE = OpenApiResponse(_DETAIL, description="A body over WEBHOOK_MAX_BODY_BYTES (64 KiB).")
NO_SUCH_CALL = OpenApiResponse(_DETAIL, description="The answer URL names a call that does not exist.")
RETRY_LATER = OpenApiResponse(
    _DETAIL,
    description=(
        "The event could not be stored (database unavailable; it is logged, and `reconcile_calls` "
        "later asks Vonage for the leg's state), or it carries no signature at all (Vonage retries a 5xx)."
    ),
)
CALLER_NCCO = OpenApiResponse(
    NCCO,
    description="What the caller hears: never a 500, whatever fails (the call centre, directly, at worst).",
)
AGENT_NCCO = OpenApiResponse(NCCO, description="What the agent hears: the whisper, then the caller.")
EVENT_ANSWER = OpenApiResponse(
    {"oneOf": [EVENT_RECEIPT, NCCO]},
    description=(
        "A receipt; or, for an agent's key press, the connect strategy's synchronous events "
        "(`?call=&attempt=`) and a caller's checkpoint (`?call=&checkpoint=agent`), the NCCO Vonage runs next."
    ),
)
CHECKPOINT_GO_ON = OpenApiResponse(
    None, description="The caller's checkpoint (a notify): empty, so Vonage goes on with the caller's NCCO."
)
# The same for a webhook's GET and POST forms.
AGENT_ANSWER_RESPONSES = {
    200: AGENT_NCCO,
    400: BAD_REQUEST,
    401: UNSIGNED,
    403: NOT_OURS,
    404: NO_SUCH_CALL,
    413: TOO_LARGE,
    503: UNAVAILABLE,
}
EVENT_RESPONSES = {
    200: EVENT_ANSWER,
    204: CHECKPOINT_GO_ON,
    400: BAD_REQUEST,
    401: UNSIGNED,
    403: NOT_OURS,
    413: TOO_LARGE,
    503: RETRY_LATER,
}


class VonageSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "calls.webhooks.auth.VonageSignatureAuthentication"
    name = "vonageSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "Vonage's signed webhooks: an HS256 JWT signed with the account's signature secret, "
                "whose payload_hash is the SHA-256 of the body; each token is accepted for one request, for "
                "VONAGE_SIGNATURE_MAX_AGE_MINUTES after its iat. Required unless DEBUG is on with no secret set."
            ),
        }


TAGS = ["Vonage webhooks"]
CALLER_ANSWER_RESPONSES = {
    200: CALLER_NCCO,
    400: BAD_REQUEST,
    401: UNSIGNED,
    403: NOT_OURS,
    413: TOO_LARGE,
    503: UNAVAILABLE,
}
# The fallback answers as the route its original_request.url named: also the checkpoint's
# 204, the agent's answer's 404 and an event's 503.
FALLBACK_RESPONSES = {**CALLER_ANSWER_RESPONSES, 204: CHECKPOINT_GO_ON, 404: NO_SUCH_CALL, 503: RETRY_LATER}


def caller_answer_schema(
    name: str, serializer: type, *, summary: str, responses: dict[int, Any] = CALLER_ANSWER_RESPONSES
) -> Any:
    """GET (query string) and POST (JSON body) of a route that answers the caller with an NCCO."""
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"{name}_get",
            tags=TAGS,
            summary=f"{summary} (Vonage's default GET)",
            parameters=[serializer],
            responses=responses,
        ),
        post=extend_schema(
            operation_id=f"{name}_post",
            tags=TAGS,
            summary=f"{summary} (answer method POST)",
            request=serializer,
            responses=responses,
        ),
    )


def placed_call_answer_schema(name: str, *, summary: str) -> Any:
    """GET and POST of a route that answers a call we placed (our ``call`` signed in its
    URL): the agent's leg, or a staff member's call-back."""
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"{name}_get",
            tags=TAGS,
            summary=summary,
            parameters=[AnswerOutboundSerializer],
            responses=AGENT_ANSWER_RESPONSES,
        ),
        post=extend_schema(
            operation_id=f"{name}_post",
            tags=TAGS,
            summary=f"{summary} (answer method POST)",
            parameters=[AnswerOutboundQuerySerializer],
            request=AnswerOutboundBodySerializer,
            responses=AGENT_ANSWER_RESPONSES,
        ),
    )
