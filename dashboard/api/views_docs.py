"""The OpenAPI schema and its Swagger UI, both for signed-in users; Swagger UI is served locally."""
from django.contrib.auth.decorators import login_required
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dashboard.roles import ReadViewerWriteOperator


class SchemaApi(SpectacularAPIView):
    """GET the OpenAPI 3 schema of /api/ (YAML, or JSON with ?format=json)."""

    permission_classes = (ReadViewerWriteOperator,)


class SwaggerUi(SpectacularSwaggerView):
    """Swagger UI from the drf-spectacular-sidecar package: no CDN, the page works offline."""

    permission_classes = (ReadViewerWriteOperator,)

    def _swagger_ui_resource(self, filename):
        from django.templatetags.static import static

        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    def _swagger_ui_favicon(self):
        from django.templatetags.static import static

        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


def swagger_ui():
    """Return the Swagger UI view; a browser without a session goes to the login page."""
    return login_required(SwaggerUi.as_view(url_name="api:schema"))
