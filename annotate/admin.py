"""Django admin for every model, and the transcript upload that runs on a Celery worker."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import URLPattern, path, reverse

from . import services
from .forms import ImportUploadForm
from .models import (
    ApiToken,
    Dialogue,
    HumanLabel,
    ImportJob,
    Label,
    LabelTask,
    LlmFailure,
    LlmLabel,
    LlmRun,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    PromptTemplate,
    QueueItem,
    QueueSkip,
    Role,
    SoftLabel,
    TrainingRun,
    Utterance,
)
from .transcripts import TranscriptError


def _admin_projects(request: HttpRequest) -> QuerySet[Project]:
    """Projects whose imports this staff user may run: all for superusers, else admin role."""
    user: Any = request.user
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__role=Role.ADMIN)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


class LabelTaskInline(admin.TabularInline):
    model = LabelTask
    extra = 0
    fields = ("name", "title", "hide_suggestion")
    show_change_link = True


class DerivedAdmin(admin.ModelAdmin):
    """A table Parley writes itself (LLM answers, soft labels, predictions, the queue): staff
    may look, not add, edit or delete — the services keep its invariants."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012
    inlines = (MembershipInline, LabelTaskInline)


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    fields = ("order", "value", "key", "description")


class PromptTemplateInline(admin.StackedInline):
    model = PromptTemplate
    extra = 0


@admin.register(LabelTask)
class LabelTaskAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "title", "hide_suggestion", "budget_mode")
    list_filter = ("project",)
    inlines = (LabelInline, PromptTemplateInline)
    actions = ("label_with_llm",)

    @admin.action(description="Label with the LLM (asks only for missing answers)")
    def label_with_llm(
        self, request: HttpRequest, queryset: QuerySet[LabelTask]
    ) -> None:
        allowed = set(_admin_projects(request).values_list("pk", flat=True))
        for task in queryset.select_related("project"):
            if task.project_id not in allowed:
                self.message_user(
                    request,
                    f"{task}: you are not an admin of this project",
                    messages.ERROR,
                )
                continue
            try:
                run = services.llm_run_request(task=task, requested_by=request.user)  # type: ignore[arg-type]
            except services.LlmNotConfigured as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return
            self.message_user(request, f"{task}: LLM run {run.pk} is {run.status}.")


class LlmFailureInline(admin.TabularInline):
    model = LlmFailure
    extra = 0
    fields = ("utterance", "prompt", "error", "raw")
    readonly_fields = fields
    can_delete = False
    show_change_link = False


@admin.register(LlmRun)
class LlmRunAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "task",
        "model",
        "status",
        "done",
        "failed",
        "total",
        "student_labelled",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "seconds",
        "created_at",
    )
    list_filter = ("status", "task")
    readonly_fields = tuple(f.name for f in LlmRun._meta.fields)
    inlines = (LlmFailureInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are started from the label task's action


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role")
    list_filter = ("project", "role")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "hint", "created_at", "last_used_at", "revoked")
    readonly_fields = ("hint", "created_at", "last_used_at")
    fields = ("user", "name", "revoked", "hint", "created_at", "last_used_at")

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key = ApiToken.generate_key()
        obj.key_hash, obj.hint = ApiToken.hash_key(key), key[:8]
        super().save_model(request, obj, form, change)
        messages.warning(
            request, f"The new token is {key} — copy it now, it is not shown again."
        )


class UtteranceInline(admin.TabularInline):
    model = Utterance
    extra = 0
    fields = ("position", "speaker", "text", "timestamp")


@admin.register(Dialogue)
class DialogueAdmin(admin.ModelAdmin):
    list_display = ("external_id", "project", "created_at")
    list_filter = ("project",)
    search_fields = ("external_id",)
    inlines = (UtteranceInline,)


@admin.register(Utterance)
class UtteranceAdmin(admin.ModelAdmin):
    list_display = ("dialogue", "position", "speaker", "text")
    search_fields = ("text", "dialogue__external_id")
    raw_id_fields = ("dialogue",)
    list_select_related = ("dialogue",)


@admin.register(LlmLabel)
class LlmLabelAdmin(DerivedAdmin):
    list_display = ("utterance", "task", "prompt", "model", "label", "confidence")
    list_filter = ("task", "prompt")
    raw_id_fields = ("utterance",)
    list_select_related = ("utterance", "task", "label", "task__project")


@admin.register(SoftLabel)
class SoftLabelAdmin(DerivedAdmin):
    list_display = (
        "utterance",
        "task",
        "label",
        "confidence",
        "agreement",
        "n_sources",
        "source",
    )
    list_filter = ("task", "source")
    raw_id_fields = ("utterance",)
    list_select_related = ("utterance", "task", "label", "task__project")


@admin.register(HumanLabel)
class HumanLabelAdmin(admin.ModelAdmin):
    """Human labels are history: they can be read, never edited or deleted."""

    list_display = (
        "utterance",
        "task",
        "label",
        "annotator",
        "annotator_name",
        "source",
        "created_at",
    )
    list_filter = ("task", "source")
    raw_id_fields = ("utterance", "annotator")
    list_select_related = ("utterance", "task", "label", "annotator", "task__project")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "task", "status", "progress", "created_at", "finished_at")
    list_filter = ("status", "task")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "task",
        "version",
        "is_active",
        "pinned",
        "scored_at",
        "files_deleted_at",
        "created_at",
    )
    list_filter = ("task", "is_active", "pinned")
    # A pinned version keeps its checkpoints (annotate/retention.py).
    list_editable = ("pinned",)


@admin.register(Prediction)
class PredictionAdmin(DerivedAdmin):
    list_display = ("utterance", "task", "model_version", "label", "trust")
    raw_id_fields = ("utterance",)
    list_select_related = (
        "utterance",
        "task",
        "model_version",
        "label",
        "task__project",
    )


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Upload a transcript file; a worker imports it while the page shows its progress."""

    list_display = (
        "pk",
        "original_name",
        "project",
        "status",
        "created",
        "updated",
        "skipped",
        "utterances",
        "created_at",
    )
    list_filter = ("status", "project")
    # What changes while the job runs (status, counts, error, times) is in the live box at the
    # top of the page (_progress.html), not in fields that would go stale beside it.
    fields = readonly_fields = (
        "project",
        "original_name",
        "format",
        "update_existing",
        "created_by",
        "created_at",
        "file",
    )
    change_form_template = "admin/annotate/importjob/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportJob]:
        return (
            super().get_queryset(request).filter(project__in=_admin_projects(request))
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            bool(getattr(request.user, "is_staff", False))
            and _admin_projects(request).exists()
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="annotate_importjob_progress",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self,
        request: HttpRequest,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        projects = _admin_projects(request)
        form = ImportUploadForm(
            request.POST or None, request.FILES or None, projects=projects
        )
        if request.method == "POST" and form.is_valid():
            try:
                job = services.import_job_create(
                    project=form.cleaned_data["project"],
                    upload=form.cleaned_data["file"],
                    user=request.user,  # type: ignore[arg-type]
                    fmt=form.cleaned_data["format"],
                    update=form.cleaned_data["update"],
                )
            except TranscriptError as exc:
                form.add_error("file", exc.message)
            else:
                url = reverse("admin:annotate_importjob_change", args=[job.pk])
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import transcripts",
            "form": form,
        }
        return render(request, "admin/annotate/importjob/upload.html", context)

    def progress_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = get_object_or_404(self.get_queryset(request), pk=pk)
        return render(
            request, "admin/annotate/importjob/_progress.html", _progress_context(job)
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = get_object_or_404(self.get_queryset(request), pk=object_id)
        # the page's title names the file; its status is live below, not frozen in the title
        title = {"title": f"Import {job.pk}: {job.original_name}"}
        return super().change_view(
            request,
            object_id,
            form_url,
            {**(extra_context or {}), **_progress_context(job), **title},
        )


def _progress_context(job: ImportJob) -> dict[str, Any]:
    return {
        "job": job,
        "progress_percent": round(100 * services.import_job_progress(job)),
    }


@admin.register(QueueItem)
class QueueItemAdmin(DerivedAdmin):
    list_display = (
        "utterance",
        "task",
        "trust",
        "trust_source",
        "trust_version",
        "required",
        "answers",
        "open",
        "claimed_by",
        "lease_until",
    )
    list_filter = ("task", "open", "trust_source")
    raw_id_fields = ("utterance", "claimed_by", "trust_version")


@admin.register(QueueSkip)
class QueueSkipAdmin(DerivedAdmin):
    list_display = ("item", "annotator", "created_at")
    raw_id_fields = ("item",)
