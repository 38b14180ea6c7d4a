from django.conf import settings
from django.db import models


class Channel(models.Model):
    name = models.CharField(max_length=100, unique=True)


class UserChannel(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="user")


class UserOidcInfo(models.Model):
    """An external user: who the provider says they are, until when."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_info")
    openid_issuer = models.CharField(max_length=255)
    openid_subject = models.CharField(max_length=255)
    valid_until = models.DateTimeField()
    refresh_token = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["openid_issuer", "openid_subject"], name="oidc_subject")]
