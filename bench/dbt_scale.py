"""dbt at scale: full build vs the refresh after a day's changes, and incremental == full refresh.

    .venv/bin/python bench/dbt_scale.py [--conversations 1000000] [--changed 3000] [--keep]

In a temp DRIFT_PIPELINE_HOME: generates raw rows with DuckDB SQL (deterministic hashes, no
Python loops): conversations over 60 days in two workspaces, ~10 messages each (contact, agent,
bot, private notes, delete edits, agent openers), status events (closes, reopens, some closed
conversations without a recorded close), users. Then:

  1. `dbt build --exclude-resource-type unit_test`           full build (timed)
  2. `dbt run --select +marts --full-refresh`               full rebuild of the webhook path (timed)
  3. a day's changes (~--changed conversations: new messages, closes, deletes, new conversations)
     then `dbt run --select +marts`                          what the webhook path runs (timed)
  4. another day's changes, then
     `dbt build --exclude-resource-type unit_test`           what a scheduled run does (timed)
  5. the marts (without `_` bookkeeping columns) are saved, `dbt run --select +marts --full-refresh`
     rebuilds them, and both directions of EXCEPT ALL must be empty.

Each dbt runs as a subprocess of .venv/bin/dbt; its peak RSS comes from os.wait4 (that process
and its children). Every figure is measured in this run; the only thing asserted is step 5.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drift_pipeline.warehouse.schema import create_raw_schema  # noqa: E402

DBT = ROOT / ".venv" / "bin" / "dbt"
DBT_PROJECT = ROOT / "dbt_project"  # --project-dir overrides (e.g. a copy of an older version)
MARTS = {
    "fct_conversations": ("org_id", "conversation_id"),
    "agg_daily_metrics": ("org_id", "metric_date"),
    "agg_agent_daily": ("org_id", "metric_date", "user_id"),
    "agg_daily_backlog": ("org_id", "metric_date", "inbox_id"),
    "fct_sla_events": ("org_id", "conversation_id", "turn_number", "sla_policy"),
    "agg_attribution_daily": ("org_id", "metric_date", "utm_source", "utm_medium", "utm_campaign"),
    "agg_playbook_daily": ("org_id", "metric_date", "playbook_id"),
    "fct_meetings": ("org_id", "slug"),
}
INITIAL_SYNC = "2026-11-01 00:00:00"
DAY_SYNCS = ("2026-11-02 00:00:00", "2026-11-03 00:00:00")
MESSAGE_SLOTS = 32  # message ids are conversation_id * 32 + slot
PLAYBOOKS = 40  # listed playbooks per org


# ---------------------------------------------------------------- data

def u(expr: str, salt: int) -> str:
    """SQL: a deterministic uniform value in [0, 1) from an integer expression and a salt."""
    return f"((hash(({expr}) * 7919 + {salt}) % 1000000) / 1000000.0)"


def generate(conn, conversations: int) -> dict:
    """Raw rows for `conversations` conversations (ids 1..n, org 2 holds every tenth)."""
    n = conversations
    conn.execute(f"""
        create temp table gen as
        select
            i as conversation_id,
            case when i % 10 = 0 then 2 else 1 end as org_id,
            timestamp '2026-09-01' + to_seconds({u('i', 1)} * 60 * 86400) as created_at,
            {u('i', 2)} as kind,        -- < 0.35: a bot opens; < 0.40 of those: an agent opener
            {u('i', 3)} as fate,        -- < 0.65 closed, < 0.95 open, else pending
            {u('i', 4)} as twist,       -- < 0.10 a delete edit; < 0.05 a reopen; > 0.92 no close event (a poll's at updatedAt)
            30 + {u('i', 5)} * 86400 as open_seconds
        from range(1, {n + 1}) as t(i)
    """)
    conn.execute(f"""
        insert into raw.conversations
            (org_id, conversation_id, status, contact_id, inbox_id, created_at, updated_at,
             assignee_user_id, related_playbook_id, synced_at)
        select
            org_id, conversation_id,
            case when fate < 0.65 then 'closed' when fate < 0.95 then 'open' else 'pending' end,
            1000000000 + conversation_id, 1 + conversation_id % 5, created_at,
            created_at + to_seconds(open_seconds + case when twist < 0.05 then 7200 else 0 end),
            1000 + conversation_id % 50,
            -- a bot opener runs a playbook (41, one in 40 of them, was never listed: no name)
            case when kind < 0.35 then 1 + conversation_id % {PLAYBOOKS + 1} end,
            timestamp '{INITIAL_SYNC}'
        from gen
    """)
    generate_playbooks_meetings_touches(conn)
    # slots 0..9: 0 bot or contact opener, 1 contact, 2 agent (or bot), 3 contact, 4 private note,
    # 5 agent, 6 contact, 7 agent, 8 bot or contact, 9 a delete edit of slot 2 or a contact chat.
    conn.execute(f"""
        insert into raw.messages
            (org_id, conversation_id, message_id, created_at, message_type, author_type, author_id,
             is_bot, body, edited_message_id, edit_type, synced_at)
        select
            org_id, conversation_id, conversation_id * {MESSAGE_SLOTS} + j,
            created_at + to_seconds(j * 240 + {u('conversation_id * 16 + j', 6)} * 239),
            case when j = 4 then 'private_note' when j = 9 and twist < 0.10 then 'edit' else 'chat' end,
            author_type,
            case when author_type = 'contact' then 1000000000 + conversation_id
                 when is_bot then 50 else 1000 + (hash(conversation_id * 13 + j) % 50) end,
            is_bot, '<p>hello</p>',
            case when j = 9 and twist < 0.10 then conversation_id * {MESSAGE_SLOTS} + 2 end,
            case when j = 9 and twist < 0.10 then 'delete' end,
            timestamp '{INITIAL_SYNC}'
        from (
            select
                gen.*, j,
                case
                    when j in (1, 3, 6) then 'contact'
                    when j = 0 and kind >= 0.35 then 'contact'
                    when j = 8 and kind >= 0.35 then 'contact'
                    when j = 9 and twist >= 0.10 then 'contact'
                    else 'user'
                end as author_type,
                (j = 0 and kind < 0.35) or (j = 8 and kind < 0.35) or (j = 2 and kind > 0.97)
                    or (j = 0 and kind >= 0.35 and kind < 0.37) as is_bot
            from gen
            cross join range(0, 10) as s(j)
            -- conversations with kind in [0.37, 0.40) have no slot 0 (fewer messages)
            where not (j = 0 and kind >= 0.37 and kind < 0.40)
        )
    """)
    conn.execute(f"""
        insert into raw.status_events (org_id, conversation_id, status, changed_at, source, recorded_at)
        select org_id, conversation_id, status, changed_at, 'poll', timestamp '{INITIAL_SYNC}'
        from (
            select org_id, conversation_id, 'open' as status, created_at as changed_at from gen
            union all
            select org_id, conversation_id, 'closed', created_at + to_seconds(open_seconds)
            from gen where fate < 0.65 and twist <= 0.92
            union all
            select org_id, conversation_id, 'open', created_at + to_seconds(open_seconds + 3600)
            from gen where fate < 0.65 and twist < 0.05
            union all
            select org_id, conversation_id, 'closed', created_at + to_seconds(open_seconds + 7200)
            from gen where fate < 0.65 and twist < 0.05
            union all
            -- the sync's first sight of a status its history does not end in (pending, or
            -- closed without a close event): a poll event at updatedAt, as sync.py writes it
            select org_id, conversation_id, case when fate < 0.65 then 'closed' else 'pending' end,
                   created_at + to_seconds(open_seconds + case when twist < 0.05 then 7200 else 0 end)
            from gen where (fate < 0.65 and twist > 0.92) or fate >= 0.95
        )
    """)
    conn.execute(f"""
        insert into raw.users (org_id, user_id, name, is_bot, synced_at)
        select org_id, user_id, case when user_id = 50 then 'Driftbot' else 'Agent ' || user_id end,
               user_id = 50, timestamp '{INITIAL_SYNC}'
        from (select unnest([1, 2]) as org_id) cross join
             (select 50 as user_id union all select 1000 + range from range(50))
    """)
    return counts(conn)


def generate_playbooks_meetings_touches(conn) -> None:
    """The rest of a workspace around the conversations in `gen`: PLAYBOOKS playbooks per org,
    a meeting booked in ~4% of conversations (a tenth of them cancelled later, seen by a poll;
    one in twenty rescheduled), and a widget `conversation:start` event with UTM fields before
    ~half of them (a quarter of those carry no UTM field)."""
    conn.execute(f"""
        insert into raw.playbooks
            (org_id, playbook_id, name, report_type, interaction_id, created_at, updated_at,
             first_seen_at, last_listed_at, currently_listed, synced_at)
        select org_id, p, 'Playbook ' || p, 'LEAD_QUALIFICATION', 500 + p, timestamp '2026-08-01',
               timestamp '2026-08-01', timestamp '{INITIAL_SYNC}', timestamp '{INITIAL_SYNC}', true,
               timestamp '{INITIAL_SYNC}'
        from (select unnest([1, 2]) as org_id) cross join range(1, {PLAYBOOKS + 1}) as t(p)
    """)
    conn.execute(f"""
        create or replace temp table booked as
        select org_id, conversation_id, created_at + interval 20 minute as scheduled_at,
               {u('conversation_id', 8)} as turn
        from gen where {u('conversation_id', 7)} < 0.04
    """)
    conn.execute(f"""
        insert into raw.meetings
            (org_id, slug, status, meeting_source, meeting_type, agent_user_id, scheduler_contact_id,
             conversation_id, booked_by_user_id, slot_start_at, slot_end_at, scheduled_at, updated_at,
             end_user_time_zone, synced_at)
        select org_id, 'm' || conversation_id, 'ACTIVE', 'chat', 'Demo', 1000 + conversation_id % 50,
               1000000000 + conversation_id, conversation_id, null,
               scheduled_at + interval 2 day, scheduled_at + interval 2 day + interval 30 minute,
               scheduled_at, scheduled_at, 'America/New_York', timestamp '{INITIAL_SYNC}'
        from booked
    """)
    conn.execute(f"""
        insert into raw.meeting_changes (org_id, slug, updated_at, status, slot_start_at, source, recorded_at)
        select org_id, 'm' || conversation_id, scheduled_at + interval 1 day,
               case when turn < 0.10 then 'CANCELED' else 'ACTIVE' end,
               scheduled_at + case when turn < 0.10 then interval 2 day else interval 3 day end,
               'poll', timestamp '{INITIAL_SYNC}'
        from booked where turn < 0.15
    """)
    conn.execute(f"""
        insert into raw.widget_events
            (org_id, event_id, event_type, conversation_id, occurred_at, utm_source, utm_medium,
             utm_campaign, page_path, dropped_fields, received_at, synced_at)
        select org_id, 'w' || conversation_id, 'conversation:start', conversation_id,
               created_at - interval 1 minute,
               case when tracked then ['google', 'linkedin', 'newsletter'][1 + conversation_id % 3] end,
               case when tracked then ['cpc', 'social', 'email'][1 + conversation_id % 3] end,
               case when tracked then 'campaign-' || conversation_id % 12 end,
               '/pricing', 0, created_at - interval 1 minute, timestamp '{INITIAL_SYNC}'
        from (select *, {u('conversation_id', 9)} < 0.375 as tracked from gen)
        where {u('conversation_id', 9)} < 0.5
    """)


def apply_day(conn, day: int, conversations: int, changed: int) -> dict:
    """A day's loads stamped DAY_SYNCS[day]: ~`changed` existing conversations get two new
    messages (a third of them also close, a tenth lose an agent reply to a delete edit) and
    changed/10 new conversations arrive."""
    stamp = DAY_SYNCS[day]
    every = max(1, conversations // changed)
    conn.execute(f"""
        create or replace temp table touched as
        select org_id, conversation_id, created_at,
               {u('conversation_id', 40 + day)} as what,
               greatest(created_at, timestamp '{stamp}' - interval 6 hour) as change_at
        from raw.conversations
        where hash(conversation_id * 31 + {day}) % {every} = 0
    """)
    slot = 10 + 3 * day
    conn.execute(f"""
        insert or replace into raw.messages
            (org_id, conversation_id, message_id, created_at, message_type, author_type, author_id,
             is_bot, body, edited_message_id, edit_type, synced_at)
        select org_id, conversation_id, conversation_id * {MESSAGE_SLOTS} + {slot} + k,
               change_at + to_seconds(60 * k),
               case when k = 2 then 'edit' else 'chat' end,
               case when k = 0 then 'contact' else 'user' end,
               case when k = 0 then 1000000000 + conversation_id else 1000 + conversation_id % 50 end,
               false, '<p>later</p>',
               case when k = 2 then conversation_id * {MESSAGE_SLOTS} + 5 end,
               case when k = 2 then 'delete' end,
               timestamp '{stamp}'
        from touched cross join range(0, 3) as s(k)
        where k < 2 or what < 0.10
    """)
    conn.execute(f"""
        insert or replace into raw.status_events
        select org_id, conversation_id, 'closed', change_at + interval 10 minute, 'webhook', timestamp '{stamp}'
        from touched where what < 0.33
    """)
    conn.execute(f"""
        update raw.conversations as c
        set status = case when t.what < 0.33 then 'closed' else c.status end,
            updated_at = t.change_at + interval 10 minute,
            synced_at = timestamp '{stamp}'
        from touched as t
        where c.org_id = t.org_id and c.conversation_id = t.conversation_id
    """)
    touched = conn.execute("select count(*) from touched").fetchone()[0]
    new = max(1, changed // 10)
    first_id = conn.execute("select max(conversation_id) + 1 from raw.conversations").fetchone()[0]
    conn.execute(f"""
        create or replace temp table arrivals as
        select i as conversation_id, case when i % 10 = 0 then 2 else 1 end as org_id,
               timestamp '{stamp}' - to_seconds(3600 + {u('i', 50)} * 36000) as created_at
        from range({first_id}, {first_id + new}) as t(i)
    """)
    conn.execute(f"""
        insert into raw.conversations
            (org_id, conversation_id, status, contact_id, inbox_id, created_at, updated_at, synced_at)
        select org_id, conversation_id, 'open', 1000000000 + conversation_id, 1, created_at,
               created_at + interval 2 minute, timestamp '{stamp}'
        from arrivals
    """)
    conn.execute(f"""
        insert into raw.messages
            (org_id, conversation_id, message_id, created_at, message_type, author_type, author_id,
             is_bot, body, synced_at)
        select org_id, conversation_id, conversation_id * {MESSAGE_SLOTS} + k,
               created_at + to_seconds(30 * k), 'chat',
               case when k = 1 then 'user' else 'contact' end,
               case when k = 1 then 1000 + conversation_id % 50 else 1000000000 + conversation_id end,
               false, '<p>new</p>', timestamp '{stamp}'
        from arrivals cross join range(0, 3) as s(k)
    """)
    conn.execute(f"""
        insert into raw.status_events
        select org_id, conversation_id, 'open', created_at, 'webhook', timestamp '{stamp}' from arrivals
    """)
    # a meeting booked in one touched conversation in 50, one in 30 of the booked ones cancelled
    # by a webhook; a widget event before every new conversation
    conn.execute(f"""
        insert or replace into raw.meetings
            (org_id, slug, status, meeting_source, meeting_type, agent_user_id, scheduler_contact_id,
             conversation_id, slot_start_at, slot_end_at, scheduled_at, updated_at, synced_at)
        select org_id, 'm' || conversation_id || '-' || {day}, 'ACTIVE', 'chat', 'Demo',
               1000 + conversation_id % 50, 1000000000 + conversation_id, conversation_id,
               change_at + interval 1 day, change_at + interval 1 day + interval 30 minute,
               change_at, change_at, timestamp '{stamp}'
        from touched where what >= 0.98
    """)
    conn.execute(f"""
        insert or replace into raw.meeting_changes (org_id, slug, updated_at, status, slot_start_at, source, recorded_at)
        select meetings.org_id, meetings.slug, timestamp '{stamp}' - interval 1 hour, 'CANCELED',
               meetings.slot_start_at, 'webhook', timestamp '{stamp}'
        from raw.meetings as meetings
        where meetings.conversation_id is not null
            and hash(meetings.conversation_id * 37 + {day}) % {max(1, every // 3)} = 0
    """)
    conn.execute(f"""
        insert into raw.widget_events
            (org_id, event_id, event_type, conversation_id, occurred_at, utm_source, utm_medium,
             utm_campaign, page_path, dropped_fields, received_at, synced_at)
        select org_id, 'w' || conversation_id, 'conversation:start', conversation_id,
               created_at - interval 1 minute, 'google', 'cpc', 'campaign-new', '/pricing', 0,
               created_at - interval 1 minute, timestamp '{stamp}'
        from arrivals
    """)
    return {"touched_conversations": touched, "new_conversations": new}


def counts(conn) -> dict:
    return {table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
            for table in ("conversations", "messages", "status_events", "users", "playbooks", "meetings",
                          "meeting_changes", "widget_events")}


# ---------------------------------------------------------------- dbt

def run_dbt(home: Path, target: Path, *args: str, project: Path = DBT_PROJECT) -> dict:
    """One dbt subprocess: wall seconds, peak RSS (MiB) and the run_results statuses."""
    env = {**os.environ, "DRIFT_PIPELINE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    log = target / "bench-dbt.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(DBT), *args, "--project-dir", str(project), "--profiles-dir", str(project),
             "--target-path", str(target), "--log-path", str(target / "logs")],
            env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    results = json.loads((target / "run_results.json").read_text())["results"]
    failed = [f"{r['unique_id']}: {r['status']}" for r in results if r["status"] not in ("success", "pass", "warn")]
    if process.returncode != 0 or failed:
        sys.exit(f"dbt {' '.join(args)} failed:\n" + "\n".join(failed) + "\n" + log.read_text()[-4000:])
    slowest = sorted(results, key=lambda r: -r["execution_time"])[:6]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),  # Linux: KiB
        "nodes": len(results),
        "slowest": [(r["unique_id"].split(".")[2], round(r["execution_time"], 2)) for r in slowest],
    }


def snapshot_marts(conn) -> None:
    conn.execute("create schema if not exists bench")
    for table in MARTS:
        columns = [r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = ? order by ordinal_position", [table]).fetchall() if not r[0].startswith("_")]
        conn.execute(f"create or replace table bench.{table} as select {', '.join(columns)} from marts.{table}")


def compare_marts(conn) -> dict:
    """Rows only in the incremental snapshot / only in the full refresh, per mart."""
    differences = {}
    for table in MARTS:
        columns = ", ".join(r[0] for r in conn.execute(f"describe bench.{table}").fetchall())
        only_incremental = conn.execute(
            f"select count(*) from (select {columns} from bench.{table} except all "
            f"select {columns} from marts.{table})").fetchone()[0]
        only_full = conn.execute(
            f"select count(*) from (select {columns} from marts.{table} except all "
            f"select {columns} from bench.{table})").fetchone()[0]
        rows = conn.execute(f"select count(*) from marts.{table}").fetchone()[0]
        differences[table] = {"rows": rows, "only_incremental": only_incremental, "only_full_refresh": only_full}
    return differences


# ---------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=3000, help="existing conversations changed per day")
    parser.add_argument("--keep", action="store_true", help="keep the temp DRIFT_PIPELINE_HOME")
    parser.add_argument("--project-dir", type=Path, default=DBT_PROJECT, help="dbt project to measure")
    args = parser.parse_args()
    global run_dbt
    run_dbt = functools.partial(run_dbt, project=args.project_dir.resolve())

    home = Path(tempfile.mkdtemp(prefix="dbt_scale_"))
    target = home / "target"
    target.mkdir()
    figures: dict = {"conversations": args.conversations, "changed_per_day": args.changed, "home": str(home)}
    try:
        started = time.perf_counter()
        with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
            create_raw_schema(conn)
            figures["raw_rows"] = generate(conn, args.conversations)
        figures["generate_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({k: figures[k] for k in ("raw_rows", "generate_seconds")}), flush=True)

        steps = {}
        steps["full_build"] = run_dbt(home, target, "build", "--exclude-resource-type", "unit_test")
        print("full build", json.dumps(steps["full_build"]), flush=True)
        steps["full_run_marts"] = run_dbt(home, target, "run", "--select", "+marts", "--full-refresh")
        print("full run +marts", json.dumps(steps["full_run_marts"]), flush=True)

        with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
            figures["day_1"] = apply_day(conn, 0, args.conversations, args.changed)
        steps["incremental_run_marts"] = run_dbt(home, target, "run", "--select", "+marts")
        print("incremental run +marts", json.dumps(steps["incremental_run_marts"]), flush=True)

        with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
            figures["day_2"] = apply_day(conn, 1, args.conversations, args.changed)
        steps["incremental_build"] = run_dbt(home, target, "build", "--exclude-resource-type", "unit_test")
        print("incremental build", json.dumps(steps["incremental_build"]), flush=True)

        with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
            snapshot_marts(conn)
            rebuilt = conn.execute(
                "select count(*) from marts.fct_conversations where _refreshed_at = "
                "(select max(_refreshed_at) from marts.fct_conversations)").fetchone()[0]
        figures["fct_rows_rebuilt_by_last_incremental"] = rebuilt
        steps["full_refresh_marts"] = run_dbt(home, target, "run", "--select", "+marts", "--full-refresh")
        with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
            figures["incremental_vs_full_refresh"] = compare_marts(conn)
        figures["steps"] = steps
        figures["ratio_incremental_run_to_full_run"] = round(
            steps["incremental_run_marts"]["seconds"] / steps["full_run_marts"]["seconds"], 3)
        figures["ratio_incremental_build_to_full_build"] = round(
            steps["incremental_build"]["seconds"] / steps["full_build"]["seconds"], 3)
        for name, step in steps.items():
            print(f"{name:24} {step['seconds']:8.2f} s  peak RSS {step['peak_rss_mib']:6} MiB  "
                  f"{step['nodes']:3} nodes  slowest: {step['slowest'][:3]}")
        print(json.dumps({k: v for k, v in figures.items() if k != "steps"}, indent=1))
        equal = all(d["only_incremental"] == 0 and d["only_full_refresh"] == 0
                    for d in figures["incremental_vs_full_refresh"].values())
        print("incremental == full refresh:", equal)
        return 0 if equal else 1
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
