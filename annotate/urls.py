from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from . import api, views

project_urls: list[URLPattern | URLResolver] = [
    path("", views.project_detail, name="project"),
    path("export.<str:fmt>", views.project_export, name="export"),
]

api_routes: list[URLPattern | URLResolver] = [
    path("projects/", api.projects, name="projects"),
    path("projects/<slug:slug>/imports/", api.import_create, name="import-create"),
    path("projects/<slug:slug>/export.<str:fmt>", api.export, name="export"),
    path("imports/<int:pk>/", api.import_detail, name="import-detail"),
]

annotate_routes: list[URLPattern | URLResolver] = [
    path("", views.projects, name="projects"),
    path("projects/<slug:slug>/", include(project_urls)),
]

urlpatterns = [
    path("", include((annotate_routes, "annotate"))),
    path("api/", include((api_routes, "api"))),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
