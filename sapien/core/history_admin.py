"""Admin changelists over history tables (events, deliveries, attempts) that cost the same at 10M rows as at 10k.

Django's default changelist grows with its table: it counts every matching row, twice; it pages by OFFSET; any
column header re-sorts; and a filter lists every value its column holds. ``HistoryModelAdmin`` replaces each:

- Order: fixed, newest first on ``(history_time_field, pk)``, which an index leads with after the filters' columns.
- Paging: by keyset. "Older" carries ``?before=<time>,<pk>`` of the page's last row, and the next page is read from
  the index just past it, however deep. There are no page numbers, so there is no OFFSET. (A bounded number of
  numbered pages would still read and throw away up to the bound's rows, and would hide the history beyond it.)
- Count: exact up to ``COUNT_CAP`` rows, counted in a subquery limited to one more; past that, PostgreSQL's
  planner estimate, shown as one ("about 9,870,000").
- Filters: an id typed in (``IdListFilter``) or a fixed list of values, never a list read from a table. Each admin
  names, in ``history_filter_indexes``, every combination of filters it offers and the index that serves it; the
  sidebar offers no other, and any other query string is refused (the admin's "incorrect lookup" redirect).
- Search: exact ids, each looked up by an index.

Django's admin allows all of it through its own hooks: ``get_changelist`` (a ``ChangeList`` that owns the results
and the order), ``change_list_template`` (older/newest links instead of page numbers) and ``list_filter`` classes.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.expressions import Combinable
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property

CURSOR_VAR = "before"
# Rows a changelist counts before it gives the planner's estimate instead.
COUNT_CAP = 1000

_M = TypeVar("_M", bound=models.Model)


@dataclass(frozen=True)
class Cursor:
    """A position in a history list: the (time, pk) of the last row shown. The next page starts just past it."""

    moment: datetime
    pk: Any

    def encode(self) -> str:
        return f"{self.moment.astimezone(UTC).isoformat().replace('+00:00', 'Z')},{self.pk}"

    @classmethod
    def decode(cls, raw: str, *, pk_field: models.Field[Any, Any]) -> "Cursor":
        """Raises ``ValueError`` unless ``raw`` is ``<ISO 8601 time with its offset>,<pk>``."""
        moment_text, _, pk_text = raw.partition(",")
        try:
            moment = parse_datetime(moment_text)
            pk = pk_field.to_python(pk_text)
        except ValidationError as exc:
            raise ValueError(f"Not a position in this list: {raw!r}.") from exc
        if moment is None or moment.tzinfo is None or pk in (None, ""):
            raise ValueError(f"Not a position in this list: {raw!r}.")
        return cls(moment, pk)

    def older(self, queryset: QuerySet[_M], *, time_field: str) -> QuerySet[_M]:
        """The rows past this position in the (time, pk) descending order: ``(time, pk) < (moment, pk)``.

        ``time <= moment`` is the range the index (and partition pruning) use; the rest breaks ties on pk.
        """
        return queryset.filter(**{f"{time_field}__lte": self.moment}).filter(
            Q(**{f"{time_field}__lt": self.moment}) | Q(pk__lt=self.pk)
        )


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of how many rows ``queryset`` matches: EXPLAIN plans the query and reads no row."""
    plan = queryset.order_by().select_related(None).explain(format="json")
    return int(json.loads(plan)[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows: exact up to it, the planner's estimate past it (``count_is_exact``).

    History changelists use only its count: they page by keyset, never by number (``page()`` would OFFSET).
    """

    count_cap = COUNT_CAP

    @cached_property
    def _counted(self) -> tuple[int, bool]:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list), True
        # SELECT COUNT(*) FROM (SELECT … LIMIT count_cap + 1): reads at most that many index entries.
        capped = self.object_list.order_by()[: self.count_cap + 1].count()
        if capped <= self.count_cap:
            return capped, True
        return max(planner_estimate(self.object_list), capped), False

    @cached_property
    def count(self) -> int:
        return self._counted[0]

    @property
    def count_is_exact(self) -> bool:
        return self._counted[1]


def _filter_name(spec: Any) -> str:
    return spec.field_path if isinstance(spec, admin.FieldListFilter) else spec.parameter_name


class HistoryChangeList(ChangeList):
    """A changelist in a fixed (time, pk) order, paged by keyset and counted by ``EstimatedCountPaginator``."""

    model_admin: "HistoryModelAdmin[Any]"

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.filter_of_param: dict[str, str] = {}  # query string parameter → its filter's name
        self.active_filters: frozenset[str] = frozenset()
        self.cursor: Cursor | None = None
        self.older_cursor: Cursor | None = None
        self.count_is_exact, self.count_cap = True, COUNT_CAP
        super().__init__(request, *args, **kwargs)

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # The cursor is a position, not a filter: the search form and every link but "older" leave it out.
        self.params.pop(CURSOR_VAR, None)
        self.filter_params.pop(CURSOR_VAR, None)
        return super().get_queryset(request, exclude_parameters)

    def get_filters(self, request: HttpRequest) -> Any:
        specs, has_filters, remaining, may_have_duplicates, has_active = super().get_filters(request)
        if remaining:
            raise IncorrectLookupParameters(f"Not a filter of this list: {', '.join(remaining)}.")
        values = [value for spec in specs for value in spec.used_parameters.values()]
        if any(isinstance(value, list) and len(value) > 1 for value in values):
            raise IncorrectLookupParameters("One value per filter.")
        served = self.model_admin.served_filter_combinations()
        self.filter_of_param = {
            param: _filter_name(spec) for spec in specs for param in spec.expected_parameters() if param is not None
        }
        self.active_filters = frozenset(_filter_name(spec) for spec in specs if spec.used_parameters)
        if self.active_filters not in served:
            raise IncorrectLookupParameters(f"No index serves the filters {sorted(self.active_filters)} together.")
        # Offer a filter only where choosing it leads to a served combination (its links drop what it replaces).
        offered = [
            spec for spec in specs
            if any(_filter_name(spec) in combination and combination - {_filter_name(spec)} <= self.active_filters
                   for combination in served)
        ]  # fmt: skip
        return offered, has_filters, remaining, may_have_duplicates, has_active

    def get_query_string(self, new_params: dict[str, Any] | None = None, remove: Iterable[str] | None = None) -> str:
        """As Django's, but a link that would combine filters no index serves drops those it does not choose."""
        new_params, remove = dict(new_params or {}), list(remove or [])
        chosen = {self.filter_of_param[p] for p, v in new_params.items() if v is not None and p in self.filter_of_param}
        kept = {
            self.filter_of_param[p] for p in self.filter_params
            if p in self.filter_of_param and p not in new_params and not any(p.startswith(r) for r in remove)
        }  # fmt: skip
        combinations = [c for c in self.model_admin.served_filter_combinations() if chosen <= c <= kept | chosen]
        if combinations and kept | chosen not in combinations:
            widest = max(combinations, key=len)
            remove += [p for p, name in self.filter_of_param.items() if name not in widest]
        return super().get_query_string(new_params, remove)

    def get_ordering(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[str | Combinable]:
        return self.model_admin.history_ordering()

    def get_ordering_field_columns(self) -> dict[int, Literal["desc", "asc"]]:
        return {}  # no column sorts

    def get_results(self, request: HttpRequest) -> None:
        time_field = self.model_admin.history_time_field
        paginator = EstimatedCountPaginator(self.queryset, self.list_per_page)
        raw_cursor = request.GET.get(CURSOR_VAR)
        try:
            self.cursor = Cursor.decode(raw_cursor, pk_field=self.lookup_opts.pk) if raw_cursor else None
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        page = self.queryset if self.cursor is None else self.cursor.older(self.queryset, time_field=time_field)
        rows = list(page[: self.list_per_page + 1])  # one more than shown: is there an older page?
        self.result_list = rows[: self.list_per_page]
        if len(rows) > self.list_per_page:
            last = self.result_list[-1]
            self.older_cursor = Cursor(getattr(last, time_field), last.pk)
        self.paginator = paginator
        self.result_count = paginator.count
        self.count_is_exact, self.count_cap = paginator.count_is_exact, paginator.count_cap
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = self.cursor is not None or self.older_cursor is not None

    @property
    def older_query_string(self) -> str | None:
        return self.get_query_string({CURSOR_VAR: self.older_cursor.encode()}) if self.older_cursor else None

    @property
    def newest_query_string(self) -> str:
        return self.get_query_string()

    @property
    def count_display(self) -> str:
        if self.count_is_exact:
            name = self.opts.verbose_name if self.result_count == 1 else self.opts.verbose_name_plural
            return f"{self.result_count:,} {name}"
        about = round(self.result_count, -max(len(str(self.result_count)) - 3, 0))
        return f"about {about:,} {self.opts.verbose_name_plural} (estimated: counting stops at {self.count_cap:,})"


class IdListFilter(admin.FieldListFilter):
    """One related object, by its id typed in: a list of every organization or subscription grows with them."""

    template = "core/history_admin/id_filter.html"

    def __init__(self, field: Any, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any,
                 field_path: str) -> None:  # fmt: skip
        self.parameter = field_path
        super().__init__(field, request, params, model, model_admin, field_path)
        values = self.used_parameters.get(self.parameter)
        self.value = str(values[-1]).strip() if isinstance(values, list) and values else ""
        if not self.value:  # an emptied box: no filter
            self.used_parameters.pop(self.parameter, None)

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter]

    def choices(self, changelist: Any) -> Iterator[Any]:
        hidden = [
            (name, value) for name, values in changelist.filter_params.items() if name != self.parameter
            for value in values
        ]  # fmt: skip
        yield {
            "parameter": self.parameter,
            "value": self.value,
            "hidden": hidden,
            "clear_query_string": changelist.get_query_string(remove=[self.parameter]),
        }


class HistoryModelAdmin(admin.ModelAdmin[_M]):
    """The admin of a history table: set ``history_time_field`` and ``history_filter_indexes``.

    ``history_filter_indexes`` maps each combination of filters offered (their field paths, or a simple filter's
    ``parameter_name``) to the index that serves it in the order ``(history_time_field DESC, pk DESC)``:
    ``{(): "…_created_idx", ("organization",): "…_org_created_idx"}``.
    """

    history_time_field: str
    history_filter_indexes: Mapping[tuple[str, ...], str]
    history_search_fields: tuple[str, ...] = ("pk",)  # exact ids; "pk" or a field (a foreign key's id)
    # Rendering the rows, not reading them, is what a page costs (a checkbox widget and links per row).
    list_per_page = 50

    change_list_template = "core/history_admin/change_list.html"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facets count every filter choice over the whole table
    sortable_by = ()
    actions_selection_counter = False  # "select all N" would act on every matching row
    date_hierarchy = None  # it reads every distinct date of the table

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return HistoryChangeList

    def history_ordering(self) -> list[str | Combinable]:
        return [f"-{self.history_time_field}", "-pk"]

    def get_ordering(self, request: HttpRequest) -> list[str | Combinable]:
        return self.history_ordering()

    def served_filter_combinations(self) -> list[frozenset[str]]:
        return [frozenset(combination) for combination in self.history_filter_indexes]

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        return self.history_search_fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[_M], search_term: str
    ) -> tuple[QuerySet[_M], bool]:
        """An exact id in any of ``history_search_fields``, each served by an index; any other text finds nothing."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q()
        for name in self.history_search_fields:
            field = self.opts.pk if name == "pk" else self.opts.get_field(name)
            target: Any = getattr(field, "target_field", field)  # a foreign key's: the field it refers to
            try:
                value = target.to_python(term)
            except ValidationError:
                continue
            matches |= Q(**{name: value})
        return (queryset.filter(matches) if matches else queryset.none()), False

    def response_action(self, request: HttpRequest, queryset: QuerySet[_M], *args: Any, **kwargs: Any) -> Any:
        """Refuses an action on "all matching rows": over a history table it has no bound. Select rows instead."""
        if self.action_form.base_fields["select_across"].to_python(request.POST.get("select_across")):
            self.message_user(
                request, "Actions here apply to the rows selected on a page, never to every matching row.",
                messages.ERROR,
            )  # fmt: skip
            return None
        return super().response_action(request, queryset, *args, **kwargs)
