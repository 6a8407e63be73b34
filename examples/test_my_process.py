"""Testing your own process with the pytest fixtures that come with transformers-ao.

Run with: pytest examples/test_my_process.py
"""

COUNTER = """
Count = Count or 0
Handlers.add("Increment", function(msg)
  Count = Count + tonumber(msg.Data)
  msg.reply({ Data = tostring(Count) })
end)
"""


def test_a_handler_replies(ao_process):
    ao_process.eval(COUNTER)  # signed by the process's owner, so aos runs it
    assert ao_process.send("Increment", data="2")["Messages"][0]["Data"] == "2"
    assert ao_process.send("Increment", data="3")["Messages"][0]["Data"] == "5"


def inbox_size(process):
    return int(process.dryrun("Eval", data="#Inbox")["Output"]["data"])


def test_a_stranger_cannot_eval(ao_process, wallets):
    before = inbox_size(ao_process)  # aos keeps the spawn message there too
    ao_process.eval("Count = 1", wallet=wallets[1])  # not the owner: the message lands in the Inbox
    assert ao_process.eval("return tostring(Count)")["Output"]["data"] == "nil"
    assert inbox_size(ao_process) == before + 1


def test_a_process_of_your_own_on_the_node(ao_node):
    process = ao_node.spawn(name="mine")  # owned by the node's wallet, which its handle signs with
    assert process.eval("return Name")["Output"]["data"] == "mine"
