"""The token blueprint end to end on the node emulator: load, Mint, Transfer, Balance, Balances."""

import json

from tfao.sandbox.aos import blueprint, blueprint_names

INITIAL_SUPPLY = str(10000 * 10**12)


def tag_map(message: dict) -> dict:
    return {tag["name"]: tag["value"] for tag in message["Tags"]}


def replies(result: dict) -> list[dict]:
    """The result's messages, with their tags as a map plus Target and Data."""
    return [{**tag_map(m), "Target": m.get("Target"), "Data": m.get("Data")} for m in result["Messages"]]


def test_the_blueprints_ship_with_the_project():
    assert {"token", "chat", "voting"} <= set(blueprint_names())
    assert "require(\".bint\")(256)" in blueprint("token")


def test_token_mint_transfer_balance_and_balances(ao_process, wallets):
    owner, alice, bob = wallets[0], wallets[1], wallets[2]
    loaded = ao_process.load_blueprint("token", wallet=owner)
    assert "Error" not in loaded, loaded
    pid = ao_process.id

    info = replies(ao_process.send("Info", wallet=alice))[0]
    assert info["Target"] == alice.address
    # Name was set when the process booted (its Name tag, else "aos"), so the blueprint keeps it
    assert (info["name"], info["ticker"], info["denomination"], info["supply"]) == (
        "aos", "PNTS", "12", INITIAL_SUPPLY)

    # minting is for the process itself: the owner makes it send Mint to itself
    ao_process.eval('Send({ Target = ao.id, Action = "Mint", Quantity = "5" })', wallet=owner)
    minted = str(10000 * 10**12 + 5)
    assert ao_process.eval("Balances[ao.id]", wallet=owner)["Output"]["data"] == minted
    assert ao_process.eval("TotalSupply", wallet=owner)["Output"]["data"] == minted

    refused = replies(ao_process.send("Mint", tags={"Quantity": "5"}, wallet=alice))[0]
    assert refused["Action"] == "Mint-Error"
    assert refused["Error"] == "Only the Process Id can mint new PNTS tokens!"

    # the process transfers to alice; alice transfers to bob, with an X- tag forwarded
    ao_process.eval(f'Send({{ Target = ao.id, Action = "Transfer", Recipient = "{alice.address}",'
                    f' Quantity = "1000" }})', wallet=owner)
    sent = replies(ao_process.send("Transfer", tags={"Recipient": bob.address, "Quantity": "250",
                                                     "X-Note": "rent"}, wallet=alice))
    debit, credit = sent[0], sent[1]
    assert (debit["Action"], debit["Target"], debit["Quantity"], debit["X-Note"]) == (
        "Debit-Notice", alice.address, "250", "rent")
    assert (credit["Action"], credit["Target"], credit["Sender"], credit["X-Note"]) == (
        "Credit-Notice", bob.address, alice.address, "rent")
    assert "You transferred \x1b[34m250" in debit["Data"]
    patch = sent[2]
    assert patch["Target"] is None and patch["device"] == "patch@1.0"
    assert json.loads(patch["balances"]) == {alice.address: "750", bob.address: "250"}

    balance = replies(ao_process.send("Balance", wallet=bob))[0]
    assert (balance["Balance"], balance["Data"], balance["Account"], balance["Ticker"]) == (
        "250", "250", bob.address, "PNTS")
    other = replies(ao_process.send("Balance", tags={"Recipient": alice.address}, wallet=bob))[0]
    assert (other["Balance"], other["Account"]) == ("750", alice.address)
    nobody = replies(ao_process.send("Balance", tags={"Recipient": "nobody"}, wallet=bob))[0]
    assert nobody["Balance"] == "0"

    balances = json.loads(replies(ao_process.send("Balances", wallet=bob))[0]["Data"])
    assert balances == {pid: str(10000 * 10**12 + 5 - 1000), alice.address: "750", bob.address: "250"}

    too_much = replies(ao_process.send("Transfer", tags={"Recipient": bob.address, "Quantity": "751"},
                                       wallet=alice))[0]
    assert (too_much["Action"], too_much["Error"]) == ("Transfer-Error", "Insufficient Balance!")

    bad = ao_process.send("Transfer", tags={"Recipient": bob.address, "Quantity": "0"}, wallet=alice)
    assert "Quantity must be greater than 0" in bad["Error"]


def test_loading_the_token_again_keeps_the_balances(ao_process, wallets):
    owner = wallets[0]
    ao_process.load_blueprint("token", wallet=owner)
    ao_process.eval('Name = "Other"; Balances.someone = "7"', wallet=owner)
    ao_process.load_blueprint("token", wallet=owner)
    assert ao_process.eval("Balances.someone .. Name", wallet=owner)["Output"]["data"] == "7Other"
