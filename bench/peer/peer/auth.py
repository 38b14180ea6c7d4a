"""Users keyed by the provider's (issuer, subject), each sign-in renewing
`valid_until` and keeping the refresh token, as Substra's backend does."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from .models import Channel, UserChannel, UserOidcInfo


class SubjectBackend(OIDCAuthenticationBackend):
    def get_token(self, payload):
        token_info = super().get_token(payload)
        self._refresh_token = token_info.get("refresh_token", "")
        return token_info

    def get_or_create_user(self, access_token, id_token, payload):
        self._claims = payload
        return super().get_or_create_user(access_token, id_token, payload)

    def filter_users_by_claims(self, claims):
        return get_user_model().objects.filter(
            oidc_info__openid_issuer=self._claims["iss"], oidc_info__openid_subject=self._claims["sub"]
        )

    def _valid_until(self):
        return timezone.now() + settings.OIDC_VALIDITY

    @transaction.atomic
    def create_user(self, claims):
        User = get_user_model()
        base = (claims.get("preferred_username") or claims["email"].split("@")[0])[:140]
        username, n = base, 1
        while User.objects.filter(username=username).exists():
            n += 1
            username = f"{base}-{n}"
        user = User.objects.create_user(username, email=claims.get("email", ""))
        channel, _ = Channel.objects.get_or_create(name="default")
        UserChannel.objects.create(user=user, channel=channel)
        UserOidcInfo.objects.create(
            user=user,
            openid_issuer=self._claims["iss"],
            openid_subject=self._claims["sub"],
            valid_until=self._valid_until(),
            refresh_token=self._refresh_token,
        )
        return user

    @transaction.atomic
    def update_user(self, user, claims):
        user.email = claims.get("email", user.email)
        user.first_name = (claims.get("name") or "")[:150]
        user.save(update_fields=["email", "first_name"])
        UserOidcInfo.objects.filter(user=user).update(valid_until=self._valid_until(), refresh_token=self._refresh_token)
        return user
