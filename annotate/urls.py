from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from . import api, browse, history, imports_page, setup, views

task_urls: list[URLPattern | URLResolver] = [
    path("queue/", views.queue, name="queue"),
    path("history/", history.history, name="history"),
    path("settings/", setup.task, name="setup-task"),
    path("settings/update", setup.task_update, name="setup-task-update"),
    path("settings/labels", setup.labels_update, name="setup-labels-update"),
    path("settings/prompts", setup.prompt_save, name="setup-prompt-save"),
    path("settings/prompts/preview", setup.prompt_preview, name="setup-prompt-preview"),
    path("settings/llm-runs", setup.llm_run, name="setup-llm-run"),
    path(
        "settings/llm-runs/<int:run>", setup.llm_run_status, name="setup-llm-run-status"
    ),
    path("corpus/", browse.corpus, name="corpus"),
    path("corpus/<int:utterance>/requeue", browse.requeue, name="corpus-requeue"),
    path("history/<int:label>/change", history.history_change, name="history-change"),
    path("queue/<int:item>/submit", views.queue_submit, name="queue-submit"),
    path("queue/<int:item>/skip", views.queue_skip, name="queue-skip"),
    path("queue/<int:item>/flag", views.queue_flag, name="queue-flag"),
    path("queue/<int:item>/dialogue", views.queue_dialogue, name="queue-dialogue"),
    path("queue/<int:item>/why", views.queue_why, name="queue-why"),
    path("queue/renew", views.queue_renew, name="queue-renew"),
    path("queue/release", views.queue_release, name="queue-release"),
    path("queue/undo", views.queue_undo, name="queue-undo"),
    path("review/", views.review, name="review"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/runs/<int:run>/", views.run_status, name="run-status"),
    path("dashboard/retrain", views.retrain, name="retrain"),
    path("student.zip", views.student_export, name="student-export"),
    path(
        "review/<int:utterance>/adjudicate",
        views.review_adjudicate,
        name="review-adjudicate",
    ),
]

project_urls: list[URLPattern | URLResolver] = [
    path("", views.project_detail, name="project"),
    path("export.<str:fmt>", views.project_export, name="export"),
    path("imports/", imports_page.imports, name="imports"),
    path("members/", setup.members, name="setup-members"),
    path("tasks/new/", setup.task_new, name="setup-task-new"),
    path("members/set", setup.member_set, name="setup-member-set"),
    path("members/project", setup.project_update, name="setup-project-update"),
    path("members/<int:user>/remove", setup.member_remove, name="setup-member-remove"),
    path("dialogues/<int:dialogue>/", browse.dialogue, name="corpus-dialogue"),
    path("imports/<int:pk>/status", imports_page.import_status, name="import-status"),
    path("tasks/<slug:task>/", include(task_urls)),
]

api_routes: list[URLPattern | URLResolver] = [
    path("schema/", api.schema, name="schema"),
    path("projects/", api.projects, name="projects"),
    path("projects/<slug:slug>/imports/", api.import_create, name="import-create"),
    path("projects/<slug:slug>/export.<str:fmt>", api.export, name="export"),
    path("imports/<int:pk>/", api.import_detail, name="import-detail"),
    path(
        "projects/<slug:slug>/tasks/<str:task>/predict",
        api.predict,
        name="predict",
    ),
]

annotate_routes: list[URLPattern | URLResolver] = [
    path("", views.projects, name="projects"),
    path("projects/new/", setup.project_new, name="project-new"),
    path("projects/<slug:slug>/", include(project_urls)),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("", include((annotate_routes, "annotate"))),
    path("api/", include((api_routes, "api"))),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
