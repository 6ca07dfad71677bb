import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0004_receiver_control_and_health"),
    ]

    operations = [
        migrations.CreateModel(
            name="SendState",
            fields=[
                (
                    "subscription",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="subscriptions.subscription",
                    ),
                ),
                (
                    "flight_tokens",
                    django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), default=list, size=None),
                ),
                (
                    "flight_until",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.DateTimeField(), default=list, size=None
                    ),
                ),
                (
                    "flight_counts",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.IntegerField(), default=list, size=None
                    ),
                ),
                (
                    "sent_at",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.DateTimeField(), default=list, size=None
                    ),
                ),
                (
                    "sent_counts",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.IntegerField(), default=list, size=None
                    ),
                ),
                ("taken", models.IntegerField(default=0)),
                ("throttled_until", models.DateTimeField(blank=True, null=True)),
                ("put_back_until", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]


# The claim's arithmetic over a subscription's send state (deliveries/limits.py), as a function so that each claim
# statement plans one call instead of its sub-selects (PL/pgSQL caches its plans per session). Given the state's
# arrays, what the claim found due (n) and the limits, it returns how many the claim takes and the new state: live
# claims only, with this one added; sends within the last second only; the end of the queue of the deliveries put
# back under a rate limit. Pure: it reads no table.
SEND_TAKE_SQL = """
CREATE OR REPLACE FUNCTION sapien_send_take(
    flight_tokens uuid[], flight_until timestamptz[], flight_counts int[], sent_at timestamptz[], sent_counts int[],
    put_back_until timestamptz, n int, cap int, rate int, throttled timestamptz, token uuid, lease float8,
    window_seconds float8,
    OUT taken int, OUT new_tokens uuid[], OUT new_until timestamptz[], OUT new_counts int[],
    OUT new_sent_at timestamptz[], OUT new_sent_counts int[], OUT new_put_back_until timestamptz
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    in_flight int := 0;
    sent int := 0;
    room_at timestamptz;
    i int;
BEGIN
    new_tokens := '{}'; new_until := '{}'; new_counts := '{}'; new_sent_at := '{}'; new_sent_counts := '{}';
    FOR i IN 1 .. coalesce(array_length(flight_tokens, 1), 0) LOOP
        IF flight_until[i] > now() AND flight_counts[i] > 0 THEN
            new_tokens := new_tokens || flight_tokens[i];
            new_until := new_until || flight_until[i];
            new_counts := new_counts || flight_counts[i];
            in_flight := in_flight + flight_counts[i];
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(sent_at, 1), 0) LOOP
        IF sent_at[i] > now() - make_interval(secs => window_seconds) THEN
            new_sent_at := new_sent_at || sent_at[i];
            new_sent_counts := new_sent_counts || sent_counts[i];
            sent := sent + sent_counts[i];
        END IF;
    END LOOP;
    IF throttled > now() THEN
        taken := 0;
    ELSE
        taken := greatest(0, least(n, cap - in_flight, coalesce(rate - in_flight - sent, n)));
    END IF;
    IF taken > 0 THEN
        new_tokens := new_tokens || token;
        new_until := new_until || (now() + make_interval(secs => lease));
        new_counts := new_counts || taken;
    END IF;
    new_put_back_until := put_back_until;
    IF rate IS NOT NULL AND n > taken THEN
        -- the queue of those put back, a second's worth (rate) to a second from when the window next has room:
        -- when its oldest send leaves it (deliveries/limits.py computes the same instant as room_at)
        room_at := now() + make_interval(secs => window_seconds);
        FOR i IN 1 .. coalesce(array_length(new_sent_at, 1), 0) LOOP
            room_at := least(room_at, new_sent_at[i] + make_interval(secs => window_seconds));
        END LOOP;
        new_put_back_until := greatest(room_at, put_back_until) + make_interval(secs => (n - taken)::float8 / rate);
    END IF;
END
$$;
"""

Migration.operations.append(migrations.RunSQL(SEND_TAKE_SQL, "DROP FUNCTION IF EXISTS sapien_send_take"))
