"""No silent data loss on start: a damaged home is refused with a clear message, a whole one starts.

A "crash image" is a copy of a live node's home (what a kill -9 leaves: the data still in the WAL).
Each damage case is applied to such an image or to a cleanly stopped home, then a node is opened on it.
"""

import os
import shutil
import sqlite3

import pytest

from tfao.cli.main import main
from tfao.node import store
from tfao.node.node import Node, NodeError

MESSAGES = 12


def output(result):
    return result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]


@pytest.fixture(scope="module")
def homes(tmp_path_factory, wallets):
    """(crash image, cleanly stopped home, process id, acknowledged message ids)."""
    root = tmp_path_factory.mktemp("recovery")
    live, image = root / "live", root / "image"
    owner = wallets[0]
    with Node(live, wallet=wallets[3]) as node:
        process = node.spawn(wallet=owner)
        ids = [process.message("Eval", data=f"Count = {n}; return Count", wallet=owner) for n in range(MESSAGES)]
        process.result(ids[-1])
        shutil.copytree(live, image, ignore=shutil.ignore_patterns("node.lock"))
    wal = live / "node.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # a clean stop leaves everything in node.sqlite
    return image, live, process.id, ids


def damaged_copy(source, tmp_path, damage):
    home = tmp_path / "home"
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("node.lock"))
    damage(home)
    return home


def assert_refused(home, wallets, reason):
    with pytest.raises(NodeError, match="is damaged and the node will not start") as refused:
        Node(home, wallet=wallets[3])
    assert reason in str(refused.value)
    assert "tfao backup" in str(refused.value)


def overwrite(path, offset, length):
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(b"\xa5" * length)


def truncate(path, fraction):
    with open(path, "r+b") as file:
        file.truncate(int(file.seek(0, 2) * fraction))


CRASH_DAMAGE = {
    "wal-missing": (lambda home: (home / "node.sqlite-wal").unlink(), "write-ahead log"),
    "wal-truncated": (lambda home: truncate(home / "node.sqlite-wal", 0.5), "write-ahead log"),
    "wal-overwritten": (lambda home: overwrite(home / "node.sqlite-wal", 0, 4096), "write-ahead log"),
    "db-emptied": (lambda home: truncate(home / "node.sqlite", 0), "missing or empty"),
    "db-deleted": (lambda home: (home / "node.sqlite").unlink(), "missing or empty"),
}


@pytest.mark.parametrize("case", CRASH_DAMAGE)
def test_a_damaged_crash_image_is_refused(homes, tmp_path, wallets, case):
    image, _, _, _ = homes
    damage, reason = CRASH_DAMAGE[case]
    home = damaged_copy(image, tmp_path, damage)
    assert_refused(home, wallets, reason)
    assert_refused(home, wallets, reason)  # and stays refused: the check changed nothing


def test_an_overwritten_middle_page_is_refused(homes, tmp_path, wallets):
    _, stopped, _, _ = homes

    def damage(home):
        database = home / "node.sqlite"
        pages = database.stat().st_size // 4096
        assert pages > 4
        overwrite(database, (pages // 2) * 4096, 4096)

    assert_refused(damaged_copy(stopped, tmp_path, damage), wallets, "node.sqlite")


def test_a_clean_restart_does_not_read_the_whole_log_but_any_write_since_brings_the_check_back(
        homes, tmp_path, wallets, monkeypatch):
    """The integrity check reads the whole database, so it is skipped when the database is exactly as the
    last clean stop left it (size and stamped modification time, no -wal): a restart then costs the same
    at any log length. A crash image, or a database written since, is checked again."""
    image, stopped, pid, ids = homes
    checked = []
    read = store.last_message_on_disk
    monkeypatch.setattr(store, "last_message_on_disk",
                        lambda path, check=True: checked.append(check) or read(path, check=check))
    home = damaged_copy(stopped, tmp_path, lambda home: None)  # the copy keeps the modification time
    for _ in range(2):
        with Node(home, wallet=wallets[3]) as node:
            assert output(node.process(pid).result(ids[-1])) == str(MESSAGES - 1)
    assert checked == [False, False]
    os.utime(home / "node.sqlite")  # as any write would
    Node(home, wallet=wallets[3]).close()
    Node(damaged_copy(image, tmp_path / "crash", lambda home: None), wallet=wallets[3]).close()
    assert checked == [False, False, True, True]


def test_an_intact_crash_image_starts_with_every_acknowledged_message(homes, tmp_path, wallets):
    image, _, pid, ids = homes
    with Node(damaged_copy(image, tmp_path, lambda home: None), wallet=wallets[3]) as node:
        process = node.process(pid)
        assert [output(process.result(mid)) for mid in ids] == [str(n) for n in range(MESSAGES)]
        assert output(process.eval("Count", wallet=wallets[0])) == str(MESSAGES - 1)


def test_a_stopped_home_is_whole_without_its_wal(homes, tmp_path, wallets):
    _, stopped, pid, ids = homes

    def without_wal(home):
        for name in ("node.sqlite-wal", "node.sqlite-shm", "weave/index.sqlite-wal", "weave/index.sqlite-shm"):
            (home / name).unlink(missing_ok=True)

    with Node(damaged_copy(stopped, tmp_path, without_wal), wallet=wallets[3]) as node:
        assert node.store.message_count(pid) == MESSAGES + 1
        assert output(node.process(pid).result(ids[-1])) == str(MESSAGES - 1)
        assert all(node.weave.has(mid) for mid in ids)


def test_tfao_check_and_backup_work_while_the_node_runs(tmp_path, wallets, capsys):
    home, copy = tmp_path / "home", tmp_path / "backup"
    owner = wallets[0]
    with Node(home, wallet=wallets[3]) as node:
        process = node.spawn(wallet=owner)
        mid = process.message("Eval", data="Kept = 'yes'", wallet=owner)
        process.result(mid)
        assert main(["check", "--home", str(home)]) == 0
        assert main(["backup", "--home", str(home), str(copy)]) == 0
    assert "ok: the copy" in capsys.readouterr().out
    assert not (copy / "node.sqlite-wal").exists()
    with Node(copy, wallet=wallets[3]) as node:
        assert output(node.process(process.id).eval("Kept", wallet=owner)) == "yes"
    assert main(["backup", "--home", str(home), str(copy)]) == 1  # never over an existing copy


def test_tfao_check_reports_a_short_log_a_broken_chain_and_a_missing_weave_item(homes, tmp_path, capsys):
    image, stopped, pid, ids = homes
    short = damaged_copy(image, tmp_path / "short", CRASH_DAMAGE["wal-truncated"][0])
    assert main(["check", "--home", str(short)]) == 1
    assert "but the node had acknowledged" in capsys.readouterr().err

    def break_chain_and_weave(home):
        with sqlite3.connect(home / "node.sqlite") as conn:
            conn.execute("UPDATE messages SET hash_chain = 'x' WHERE process_id = ? AND nonce = 3", (pid,))
        conn.close()
        with sqlite3.connect(home / "weave" / "index.sqlite") as weave:
            weave.execute("DELETE FROM items WHERE id = ?", (ids[5],))
        weave.close()

    broken = damaged_copy(stopped, tmp_path / "broken", break_chain_and_weave)
    assert main(["check", "--home", str(broken)]) == 1
    problems = capsys.readouterr().err
    assert f"process {pid}: the hash chain breaks at nonce 3" in problems
    assert "the assignment's tags do not match the log" in problems
    assert f"the weave does not hold message {ids[5]} intact" in problems


def test_a_power_cut_that_takes_the_weaves_last_items_leaves_them_in_the_log_and_a_restart_gives_them_back(
        tmp_path, wallets):
    """The weave commits without waiting for the disk (the log waits): a cut can lose the weave's last
    commits, which is what putting back an earlier copy of its index does here. Items that are not in the log
    (uploads, a process's outputs) are lost with their blocks, and block heights still never go back."""
    home, owner = tmp_path / "home", wallets[0]
    with Node(home, wallet=wallets[3]) as node:
        process = node.spawn(wallet=owner)
        process.result(process.message("Eval", data="Count = 0", wallet=owner))
        node.weave.checkpoint()
        shutil.copyfile(home / "weave" / "index.sqlite", tmp_path / "earlier-index.sqlite")
        for upload in (b"an upload", b"another"):
            node.weave.add_bytes(upload, wallets[1])
        later = [process.message("Eval", data=f"Count = {n}; return Count", wallet=owner) for n in range(1, 4)]
        process.result(later[-1])
        last_height = node.find_scheduled(later[-1]).block_height
    shutil.copyfile(tmp_path / "earlier-index.sqlite", home / "weave" / "index.sqlite")
    assert not any(sqlite3.connect(home / "weave" / "index.sqlite").execute(
        f"SELECT 1 FROM items WHERE id IN ({','.join('?' * len(later))})", later).fetchall())
    with Node(home, wallet=wallets[3]) as node:
        assert all(node.weave.verify(mid) for mid in later)
        assert node.weave.current_height() == last_height - 2  # the uploads' blocks are gone
        again = node.process(process.id).message("Eval", data="return Count", wallet=owner)
        assert node.find_scheduled(again).block_height == last_height  # not last_height - 1
        assert output(node.process(process.id).result(again)) == "3"
    assert main(["check", "--home", str(home)]) == 0
