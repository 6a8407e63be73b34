"""The node's log answers lookups from its indexes, so their cost does not grow with a process's log."""

from __future__ import annotations

from tfao.node.store import NodeStore, ScheduledMessage


def plans_of(store: NodeStore, call) -> list[str]:
    """SQLite's query plan of every statement ``call`` runs."""
    statements: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [" ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in statements]


def test_finding_a_message_by_id_reads_the_id_index(tmp_path):
    store = NodeStore(tmp_path / "node.sqlite")
    for pid in ("p", None):
        plans = plans_of(store, lambda: store.find_message("m", pid))
        assert plans and all("messages_by_id" in plan for plan in plans), plans
    store.close()


def test_counting_and_paging_a_log_read_its_key(tmp_path):
    store = NodeStore(tmp_path / "node.sqlite")
    for call in (lambda: store.message_count("p"), lambda: store.evaluated_upto("p"),
                 lambda: store.message("p", 5), lambda: store.successful_messages("p", after=10, limit=5)):
        plans = plans_of(store, call)
        assert plans and all("SCAN" not in plan.split(" USING")[0] or "COVERING" in plan for plan in plans), plans
    store.close()


def safety(conn) -> int:
    return conn.execute("PRAGMA synchronous").fetchone()[0]  # 1: NORMAL, 2: FULL


def test_only_a_result_that_schedules_nothing_commits_without_waiting_for_the_disk(tmp_path, monkeypatch):
    """Messages are acknowledged once on disk; a successful result is recomputed from the log, so its commit
    need not wait (synchronous=NORMAL), unless it scheduled messages too (then the WAL is synced)."""
    store = NodeStore(tmp_path / "node.sqlite")
    synced = []
    monkeypatch.setattr(store, "_sync_wal", lambda: synced.append(True))
    with store.transaction() as conn:
        assert safety(conn) == 2
    with store.transaction(derived=True) as conn:
        assert safety(conn) == 1
    assert safety(store._conn()) == 2 and not synced
    with store.transaction(derived=True) as conn:
        store.add_message(conn, ScheduledMessage("p", 0, "m", "a", b"item", b"assignment", 0, 1, "chain"))
    assert synced == [True] and safety(store._conn()) == 2
    store.close()
