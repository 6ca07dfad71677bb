from typing import Any
from uuid import UUID

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from availability.models import AvailabilityProfile, ConnectionKind
from availability.selectors import availabilities_of, availability_of
from availability.serializers import (
    AvailabilityListSerializer,
    AvailabilitySerializer,
    DisconnectSerializer,
    HeartbeatSerializer,
    ProfileSerializer,
    StatusDeclarationSerializer,
)
from availability.services.connections import connection_close, connection_open_or_refresh
from availability.services.declarations import manual_status_clear, manual_status_set, override_lift, override_set
from availability.services.profiles import profile_create, profile_delete, profile_update
from sapien.core.models import User
from sapien.core.permissions import HasRequiredScope, UserTokenRequired


def client_context(request: Request) -> dict[str, Any]:
    """What the event's ``metadata`` may say about the caller's device."""
    return {
        "device_type": "api",
        "ip_address": request.META.get("REMOTE_ADDR"),
        "user_agent": request.headers.get("User-Agent", "")[:500],
    }


def me(request: Request) -> User:
    """The user a user token was issued to (``UserTokenRequired`` has checked there is one)."""
    user = request.user
    assert isinstance(user, User)
    return user


def actor_of(request: Request) -> str:
    """Who acts: the user of a user token, else the OAuth client."""
    return str(request.user.pk) if request.user else request.auth.application.client_id  # type: ignore[union-attr]


def organization_user(request: Request, user_id: str) -> User:
    return get_object_or_404(User, pk=user_id, organization=request.organization)  # type: ignore[attr-defined]


class MyAvailabilityView(APIView):
    """The caller's own availability; ``DELETE`` clears the manual declaration."""

    permission_classes = [HasRequiredScope, UserTokenRequired]
    read_scope = "availability:read"
    write_scope = "availability:write"

    @extend_schema(responses=AvailabilitySerializer)
    def get(self, request: Request) -> Response:
        return Response(AvailabilitySerializer(availability_of(me(request))).data)

    @extend_schema(request=StatusDeclarationSerializer, responses=AvailabilitySerializer)
    def put(self, request: Request) -> Response:
        serializer = StatusDeclarationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        state = manual_status_set(user=me(request), context=client_context(request), **serializer.validated_data)
        return Response(AvailabilitySerializer(state).data)

    @extend_schema(request=None, responses={200: AvailabilitySerializer})
    def delete(self, request: Request) -> Response:
        state = manual_status_clear(user=me(request), context=client_context(request))
        return Response(AvailabilitySerializer(state).data)


class UserAvailabilityView(APIView):
    read_scope = "availability:read"

    @extend_schema(responses=AvailabilitySerializer)
    def get(self, request: Request, user_id: str) -> Response:
        return Response(AvailabilitySerializer(availability_of(organization_user(request, user_id))).data)


class AvailabilityListView(APIView):
    read_scope = "availability:read"
    max_ids = 100

    @extend_schema(
        parameters=[OpenApiParameter("user_ids", str, required=True, description="Comma-separated user ids (≤100)")],
        responses=AvailabilityListSerializer,
    )
    def get(self, request: Request) -> Response:
        raw = [part.strip() for part in request.query_params.get("user_ids", "").split(",") if part.strip()]
        if not raw:
            raise ValidationError({"user_ids": ["Name at least one user id."]})
        if len(raw) > self.max_ids:
            raise ValidationError({"user_ids": [f"At most {self.max_ids} ids."]})
        try:
            ids = [UUID(part) for part in raw]
        except ValueError as exc:
            raise ValidationError({"user_ids": ["Every id must be a UUID."]}) from exc
        states = availabilities_of(request.organization, ids)  # type: ignore[attr-defined]
        # Not cursor-paginated: at most 100 ids, ordered by email, so one page always holds them all.
        return Response({"next": None, "previous": None, "results": AvailabilitySerializer(states, many=True).data})


class OverrideView(APIView):
    """An organization admin's override: highest priority, until lifted or expired."""

    read_scope = "events:admin"
    write_scope = "events:admin"

    @extend_schema(request=StatusDeclarationSerializer, responses=AvailabilitySerializer)
    def post(self, request: Request, user_id: str) -> Response:
        user = organization_user(request, user_id)
        serializer = StatusDeclarationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actor = actor_of(request)
        state = override_set(user=user, actor_id=actor, **serializer.validated_data)
        return Response(AvailabilitySerializer(state).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=AvailabilitySerializer)
    def delete(self, request: Request, user_id: str) -> Response:
        user = organization_user(request, user_id)
        actor = actor_of(request)
        return Response(AvailabilitySerializer(override_lift(user=user, actor_id=actor)).data)


class HeartbeatView(APIView):
    """Opens or refreshes a presence connection. Only ``activity`` says whether the user is active."""

    permission_classes = [HasRequiredScope, UserTokenRequired]
    counts_as_activity = False
    write_scope = "availability:write"

    @extend_schema(request=HeartbeatSerializer, responses=AvailabilitySerializer)
    def post(self, request: Request) -> Response:
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        state, _ = connection_open_or_refresh(
            user=me(request),
            kind=ConnectionKind.PRESENCE,
            connection_id=data["connection_id"],
            device_type=data["device_type"],
            activity=data["activity"],
            location=data["location"],
            ip_address=request.META.get("REMOTE_ADDR"),
            user_agent=request.headers.get("User-Agent", "")[:500],
            source="presence_heartbeat",
        )
        return Response(AvailabilitySerializer(state).data)


class DisconnectView(APIView):
    permission_classes = [HasRequiredScope, UserTokenRequired]
    counts_as_activity = False
    write_scope = "availability:write"

    @extend_schema(request=DisconnectSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        serializer = DisconnectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        closed = connection_close(
            user_id=me(request).pk,
            connection_id=serializer.validated_data["connection_id"],
            reason="disconnect",
            kind=ConnectionKind.PRESENCE,
        )
        if not closed:
            raise NotFound("No open presence connection has that connection_id.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileViewSet(viewsets.ModelViewSet):
    """Profiles of the caller (a user token), or of any user of the organization (a client token with events:admin)."""

    serializer_class = ProfileSerializer
    read_scope = "availability:read"
    write_scope = "availability:write"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return AvailabilityProfile.objects.none()
        queryset = AvailabilityProfile.objects.filter(organization=self.request.organization)  # type: ignore[attr-defined]
        if self.request.user is not None:
            return queryset.filter(user=me(self.request))
        user_id = self.request.query_params.get("user_id")
        return queryset.filter(user_id=user_id) if user_id else queryset

    def _owner(self, user_id: Any) -> User:
        if self.request.user is not None:
            if user_id not in (None, self.request.user.pk):
                raise PermissionDenied("A user token manages its own profiles only.")
            return self.request.user  # type: ignore[return-value]
        if not self.request.auth.allow_scopes(["events:admin"]):
            raise PermissionDenied("A client token needs the 'events:admin' scope to manage users' profiles.")
        if user_id is None:
            raise ValidationError({"user_id": ["A client token must name the profile's user_id."]})
        return organization_user(self.request, str(user_id))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        owner = self._owner(data.pop("user_id", None))
        profile = profile_create(owner=owner, **data)
        return Response(self.get_serializer(profile).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        profile = self.get_object()
        self._owner(profile.user_id)
        serializer = self.get_serializer(profile, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("user_id", None)
        return Response(self.get_serializer(profile_update(profile=profile, **data)).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        profile = self.get_object()
        self._owner(profile.user_id)
        profile_delete(profile=profile)
        return Response(status=status.HTTP_204_NO_CONTENT)
