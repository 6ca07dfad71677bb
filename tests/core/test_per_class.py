"""What depends on a class alone is built by its first instance and kept on that class, not on its parent."""

from sapien.core.per_class import built_once_per_class


def classes(builds: list[str]) -> tuple[type, type]:
    """A parent and a child class whose ``built()`` records each build; new classes for each spec."""

    class Parent:
        def built(self) -> str:
            return built_once_per_class(self, "_kept", self.build)

        def build(self) -> str:
            builds.append(type(self).__name__)
            return type(self).__name__

    class Child(Parent):
        pass

    return Parent, Child


def test_the_first_instance_builds_and_the_others_reuse_what_it_built() -> None:
    builds: list[str] = []
    parent, _ = classes(builds)

    kept = [parent().built(), parent().built()]

    assert kept == ["Parent", "Parent"]
    assert builds == ["Parent"]


def test_a_subclass_builds_its_own_rather_than_inheriting_its_parents() -> None:
    builds: list[str] = []
    parent, child = classes(builds)

    parent().built()
    kept = child().built()

    assert kept == "Child"
    assert builds == ["Parent", "Child"]
