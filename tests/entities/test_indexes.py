"""The entity tables' indexes: the key and the list indexes, no lone index of a foreign key that a list index
already leads with (one more write per entity created, for nothing)."""

import pytest
from django.db import connection

from tests.core.test_pagination import plan_of

pytestmark = pytest.mark.django_db


def test_each_entity_table_has_its_key_and_its_list_indexes_only() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes"
            " WHERE tablename IN ('entities_person', 'entities_pet', 'entities_toy')"
        )
        indexes = set(cursor.fetchall())

    assert indexes == {
        ("entities_person", "entities_person_pkey"), ("entities_person", "person_org_created_idx"),
        ("entities_person", "person_org_status_idx"), ("entities_person", "person_org_email_idx"),
        ("entities_pet", "entities_pet_pkey"), ("entities_pet", "pet_org_created_idx"),
        ("entities_pet", "pet_org_type_idx"), ("entities_pet", "pet_owner_created_idx"),
        ("entities_toy", "entities_toy_pkey"), ("entities_toy", "toy_org_created_idx"),
        ("entities_toy", "toy_pet_created_idx"),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ("DELETE FROM entities_pet WHERE owner_id = '00000000-0000-0000-0000-000000000001'", "pet_owner_created_idx"),
        ("DELETE FROM entities_toy WHERE pet_id = '00000000-0000-0000-0000-000000000001'", "toy_pet_created_idx"),
        (
            "DELETE FROM entities_person WHERE organization_id = '00000000-0000-0000-0000-000000000001'",
            "person_org_",  # any of the person lists' indexes: each leads with the organization
        ),
    ],
)
def test_what_the_cascades_delete_is_found_through_a_list_index(statement: str, index: str) -> None:
    assert f"Index Scan using {index}" in plan_of(statement)
