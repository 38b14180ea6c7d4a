from django.conf import settings
from django.http import HttpResponse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView
from rest_framework_simplejwt.tokens import RefreshToken


class Callback(OIDCAuthenticationCallbackView):
    """The provider's redirect: signs the user in (a Django session), then
    gives the front end its JWTs as cookies."""

    def login_success(self):
        response = super().login_success()
        refresh = RefreshToken.for_user(self.user)
        access = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
        lifetime = settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
        response.set_cookie("access", str(refresh.access_token), max_age=int(access.total_seconds()), httponly=True, samesite="Lax")
        response.set_cookie("refresh", str(refresh), max_age=int(lifetime.total_seconds()), httponly=True, samesite="Lax")
        return response


def home(request):
    return HttpResponse("signed in" if request.user.is_authenticated else "signed out")
