from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from calls.health import healthz

urlpatterns = [
    # Vonage's routes first: the ones resolved on every call, tried before the others.
    path("", include("calls.urls")),
    path("admin/", admin.site.urls),
    # Like the webhooks: slash optional, never a redirect, exempt from the HTTPS redirect.
    re_path(r"^healthz/?$", healthz, name="healthz"),
    # The webhooks' OpenAPI description: YAML, or JSON with ?format=json.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="schema-docs"),
]
