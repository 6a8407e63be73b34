"""A process with a message handler, driven from Python on a temporary local node.

Run with: python examples/process_with_handler.py
"""

from tfao.node import Node
from weavedrive.wallet import premade_wallets

# A tiny shared to-do list: anyone may add an item, everyone gets the list back.
TODO_LIST = """
Items = Items or {}
Handlers.add("Add", function(msg)
  table.insert(Items, msg.Data)
  msg.reply({ Data = #Items .. " items: " .. table.concat(Items, ", ") })
end)
"""

with Node() as node:  # temporary: gone when the block ends; Node("some/folder") keeps its processes
    process = node.spawn(name="todo")  # owned by the node's wallet, which the handle signs with
    print("spawned", process.id)
    process.eval(TODO_LIST)  # only the owner may Eval

    alice, bob = premade_wallets()[:2]  # public test keys: any wallet can send messages
    for wallet, item in [(alice, "milk"), (bob, "bread")]:
        reply = process.send("Add", data=item, wallet=wallet)["Messages"][0]
        print(f"{item} added; the reply to {reply['Target'][:8]}... says: {reply['Data']}")

    # a dry-run reads the state without sending a message
    print("dry-run:", process.dryrun("Eval", data="#Items")["Output"]["data"], "items")
