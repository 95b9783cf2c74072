"""Vonage's routes. Slash optional and never a redirect: Vonage does not follow
redirects on POST."""

from django.urls import re_path

from .webhooks import views as webhooks

app_name = "calls"

# The event route first: eight of a call's eleven webhooks are events.
urlpatterns = [
    re_path(r"^event/?$", webhooks.EventView.as_view(), name="event"),
    re_path(r"^answer_inbound/?$", webhooks.AnswerInboundView.as_view(), name="answer_inbound"),
    re_path(r"^answer_outbound/?$", webhooks.AnswerOutboundView.as_view(), name="answer_outbound"),
    re_path(r"^answer_callback/?$", webhooks.AnswerCallbackView.as_view(), name="answer_callback"),
    re_path(r"^fallback/?$", webhooks.FallbackView.as_view(), name="fallback"),
]
