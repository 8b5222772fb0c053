from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotate.models import (
    Dialogue,
    HumanLabel,
    Label,
    LabelTask,
    LlmLabel,
    Membership,
    Project,
    Utterance,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = "annotator"


class LabelTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelTask

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"task{n}")


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    task = factory.SubFactory(LabelTaskFactory)
    value = factory.Sequence(lambda n: f"label{n}")
    key = factory.Sequence(lambda n: "abcdeghijklmnopqrtvwxyz"[n % 23])
    order = factory.Sequence(lambda n: n)


class DialogueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dialogue

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"d{n}")


class UtteranceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Utterance

    dialogue = factory.SubFactory(DialogueFactory)
    position = factory.Sequence(lambda n: n)
    speaker = "A"
    text = factory.Faker("sentence")


class LlmLabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LlmLabel

    utterance = factory.SubFactory(UtteranceFactory)
    task = factory.SelfAttribute("label.task")
    label = factory.SubFactory(LabelFactory)
    prompt = "P1"
    confidence = 0.9
    distribution = factory.LazyAttribute(lambda o: {o.label.value: 1.0})


class HumanLabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HumanLabel

    utterance = factory.SubFactory(UtteranceFactory)
    task = factory.SelfAttribute("label.task")
    label = factory.SubFactory(LabelFactory)
    annotator = factory.SubFactory(UserFactory)
    created_at = factory.LazyFunction(timezone.now)
