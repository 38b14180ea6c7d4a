from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from . import views

urlpatterns = [
    path("oidc/authenticate/", OIDCAuthenticationRequestView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", views.Callback.as_view(), name="oidc_authentication_callback"),
    path("", views.home),
]
