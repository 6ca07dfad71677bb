"""The one mechanism that scopes every API query to the caller's organization."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import viewsets


class OrganizationScopedViewSet(viewsets.ModelViewSet):
    """Lists, reads and writes only the caller's organization's rows: another's object is a 404."""

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return super().get_queryset().none()
        return super().get_queryset().filter(organization=self.request.organization)  # type: ignore[attr-defined]

    def perform_create(self, serializer: Any) -> None:
        serializer.save(organization=self.request.organization)  # type: ignore[attr-defined]
