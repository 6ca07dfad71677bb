from django.contrib import admin

from sapien.entities.models import Person, Pet, Toy


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin[Person]):
    list_display = ["name", "email", "status", "organization", "created_at"]
    list_filter = ["status", "organization"]
    search_fields = ["name", "email", "id"]


@admin.register(Pet)
class PetAdmin(admin.ModelAdmin[Pet]):
    list_display = ["name", "type", "owner", "organization", "created_at"]
    list_filter = ["type", "organization"]
    search_fields = ["name", "id"]
    raw_id_fields = ["owner"]


@admin.register(Toy)
class ToyAdmin(admin.ModelAdmin[Toy]):
    list_display = ["name", "pet", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "id"]
    raw_id_fields = ["pet"]
